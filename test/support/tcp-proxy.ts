import { createServer, type Server, Socket } from 'node:net';

/**
 * A loopback TCP proxy for fault injection: `cut()` silently stops forwarding in both directions
 * without closing anything (a network partition, not a reset); `reset()` destroys every connection.
 */
export interface TcpProxy {
  port: number;
  cut(): void;
  heal(): void;
  reset(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let blackhole = false;
  const server: Server = createServer((client) => {
    const upstream = new Socket();
    upstream.connect(target.port, target.host);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const forward = (from: Socket, to: Socket) =>
      from.on('data', (chunk) => {
        if (!blackhole) to.write(chunk);
      });
    forward(client, upstream);
    forward(upstream, client);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', () => {
      if (!blackhole) end();
    });
    upstream.on('error', end).on('close', () => {
      if (!blackhole) end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    cut: () => {
      blackhole = true;
    },
    heal: () => {
      blackhole = false;
    },
    reset: () => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
    },
    close: async () => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
