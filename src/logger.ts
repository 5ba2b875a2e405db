import { Writable } from 'node:stream';
import { type LevelWithSilent, type Logger, pino } from 'pino';

/** Paths that may hold secrets anywhere bosun logs an object. They are censored, never printed. */
export const REDACT_PATHS = [
  'secret',
  '*.secret',
  '*.*.secret',
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  'headers.authorization',
  '*.api_secret',
  '*.*.api_secret',
  '*.secret_key',
  '*.*.secret_key',
];

/**
 * JSON lines for log collectors; on a terminal (`pretty`, by default when the destination is a TTY
 * stdout) one human-readable line each instead, with the same fields (and the same redactions).
 */
export function createLogger(
  opts: { level?: LevelWithSilent; destination?: NodeJS.WritableStream; pretty?: boolean } = {},
): Logger {
  const destination = opts.destination ?? process.stdout;
  const pretty = opts.pretty ?? (destination === process.stdout && process.stdout.isTTY === true);
  return pino(
    {
      level: opts.level ?? 'info',
      base: { service: 'bosun' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pretty ? prettyStream(destination) : destination,
  );
}

const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
};

/** `18:02:03.104 INFO  [observer] relay synced relay=r1 version=3`: pino's JSON line, for people. */
export function prettyLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const { level, time, msg, service: _service, component, err, ...fields } = entry;
  const parts = [
    typeof time === 'string' ? time.slice(11, 23) : '',
    LEVELS[level as number] ?? String(level),
    ...(component ? [`[${String(component)}]`] : []),
    String(msg ?? ''),
    ...Object.entries(fields).map(([k, v]) => `${k}=${shown(v)}`),
  ];
  const error = err as { message?: string; stack?: string } | undefined;
  if (error) parts.push(`err=${shown(error.message ?? '')}`);
  // An error or worse is rare and worth its stack (indented under its line).
  const stack =
    (level as number) >= 50 && error?.stack ? `\n    ${error.stack.split('\n').slice(1).join('\n    ')}` : '';
  return parts.join(' ') + stack;
}

const shown = (v: unknown) =>
  typeof v === 'string' && v !== '' && !/[\s"=]/.test(v) ? v : JSON.stringify(v);

function prettyStream(out: NodeJS.WritableStream): Writable {
  return new Writable({
    write(chunk, _encoding, done) {
      const lines = String(chunk).split('\n').filter(Boolean);
      out.write(lines.map((l) => `${prettyLine(l)}\n`).join(''));
      done();
    },
  });
}
