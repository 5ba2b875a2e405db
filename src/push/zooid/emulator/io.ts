/** Reading a request body under zooid's limit, and writing a reply. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Reply } from './reply.js';
import type { RequestBody } from './routes.js';

/** zooid's http.MaxBytesReader limit. */
export const BODY_LIMIT = 1 << 20;

/** Reads the whole body, keeping at most BODY_LIMIT bytes; rejects when the client goes away first. */
export function readBody(req: IncomingMessage): Promise<RequestBody> {
  return new Promise<RequestBody>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let ended = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= BODY_LIMIT) chunks.push(chunk);
    });
    req.on('end', () => {
      ended = true;
      resolve({ body: Buffer.concat(chunks), tooLarge: size > BODY_LIMIT });
    });
    req.on('error', reject);
    req.on('close', () => {
      if (!ended) reject(new Error('client went away before sending the whole body'));
    });
  });
}

export function send(res: ServerResponse, reply: Reply, head: boolean): void {
  res.writeHead(reply.status, {
    'content-type': reply.contentType,
    'content-length': Buffer.byteLength(reply.body),
    ...(reply.headers ?? {}),
  });
  res.end(head ? undefined : reply.body);
}

/** A body as the request log keeps it: parsed JSON, else the text. */
export function logBody(body: Buffer): unknown {
  const text = body.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
