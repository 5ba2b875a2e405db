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

export function createLogger(
  opts: { level?: LevelWithSilent; destination?: NodeJS.WritableStream } = {},
): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: { service: 'bosun' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination ?? process.stdout,
  );
}
