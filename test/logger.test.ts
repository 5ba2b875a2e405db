import { Writable } from 'node:stream';
import { expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, destination };
}

it('on a terminal each entry is one readable line, with the same fields and redactions', () => {
  const { lines, destination } = capture();
  const logger = createLogger({ destination, pretty: true });
  logger.info({ url: 'http://127.0.0.1:8080', database: 'sqlite:./data/bosun.db' }, 'bosun listening');
  logger
    .child({ component: 'observer' })
    .warn({ relay: 'r1', token: 'bosun_secret', note: 'two words' }, 'x');
  expect(lines[0]).toMatch(
    /^\d\d:\d\d:\d\d\.\d{3} INFO {2}bosun listening url=http:\/\/127\.0\.0\.1:8080 database=sqlite:\.\/data\/bosun\.db$/,
  );
  expect(lines[1]).toMatch(/ WARN {2}\[observer\] x relay=r1 token=\[redacted\] note="two words"$/);
  expect(lines.join('\n')).not.toContain('bosun_secret');
});

it('elsewhere JSON lines, as log collectors read them', () => {
  const { lines, destination } = capture();
  createLogger({ destination }).info({ url: 'http://x' }, 'bosun listening');
  expect(JSON.parse(lines[0]!)).toMatchObject({
    level: 30,
    service: 'bosun',
    url: 'http://x',
    msg: 'bosun listening',
  });
});
