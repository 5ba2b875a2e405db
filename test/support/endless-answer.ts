import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EndlessAnswer {
  url: string;
  /** Answers whose connection has closed (bosun gave up reading them). */
  closed(): number;
  close(): Promise<void>;
}

/**
 * A loopback server whose answers (`status`, JSON content type) never end: a chunk every turn for
 * as long as the connection stays open. `answer` may take a request over instead (return true).
 */
export async function endlessAnswer(
  status: number,
  answer: (method: string, res: ServerResponse) => boolean = () => false,
): Promise<EndlessAnswer> {
  let closed = 0;
  const server = createServer((req, res) => {
    req.resume();
    res.on('close', () => closed++);
    res.writeHead(status, { 'content-type': 'application/json' });
    if (answer(req.method ?? '', res)) return;
    const chunk = Buffer.alloc(16_384, 0x20);
    const more = () => {
      if (!res.destroyed && res.write(chunk)) setImmediate(more);
      else if (!res.destroyed) res.once('drain', more);
    };
    more();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    closed: () => closed,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}
