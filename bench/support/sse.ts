/**
 * A lightweight agent-stream client for benchmarks: raw HTTP/1.1 over a net socket (no fetch, no
 * EventSource), so one process can hold thousands of streams and cost little. It speaks
 * `GET /v1/stream` (docs/stream-protocol.md §1, §8), decodes chunked transfer encoding, notes when the
 * first put has fully arrived (with its epoch and held versions, for resume headers), and then hands
 * the decoded body text to the caller. Text is latin1, one char per byte. Shared by bench/stream and
 * bench/load.
 */
import { connect, type Socket } from 'node:net';
import { now } from './child.js';

export interface SseStream {
  readonly socket: Socket;
  readonly token: string;
  /** HTTP status of the response, once its head has arrived. */
  status: number | undefined;
  /** Decoded body text not consumed yet (after the put, once it has arrived). */
  buf: string;
  /** When the first put had fully arrived; undefined before. */
  putAt: number | undefined;
  /** Size of the put frame in bytes (from `event: put` to its blank line). */
  putBytes: number;
  epoch: string | undefined;
  /** `<id>=<v>,…` of the put's relays, ascending id (the Bosun-Held-Versions header). */
  held: string | undefined;
  /** The socket has closed. */
  closed: boolean;
}

export interface SseOptions {
  port: number;
  host?: string;
  token: string;
  /** Resume headers (§8), as an agent holding state sends them. */
  resume?: { epoch: string; held: string } | undefined;
  /** The put has fully arrived (`putAt` set, `buf` holds what followed it). */
  onPut?: (s: SseStream) => void;
  /** More body text arrived after the put (in `buf`). */
  onData?: (s: SseStream) => void;
  /** The socket closed (by either side). */
  onClose?: (s: SseStream) => void;
}

/** Opens one agent stream. */
export function openSse(o: SseOptions): SseStream {
  const host = o.host ?? '127.0.0.1';
  const socket = connect(o.port, host);
  const s: SseStream = {
    socket,
    token: o.token,
    status: undefined,
    buf: '',
    putAt: undefined,
    putBytes: 0,
    epoch: o.resume?.epoch,
    held: o.resume?.held,
    closed: false,
  };
  // Response head, then the body (de-chunked when the response is chunked).
  let head = '';
  let chunked = false;
  let raw = '';
  let remaining = 0; // bytes left in the current chunk
  let crlfDue = false; // a chunk's data ended; its CRLF comes next

  const decode = (text: string): string => {
    if (!chunked) return text;
    raw += text;
    let out = '';
    for (;;) {
      if (remaining > 0) {
        if (raw.length === 0) break;
        const take = Math.min(remaining, raw.length);
        out += raw.slice(0, take);
        raw = raw.slice(take);
        remaining -= take;
        if (remaining === 0) crlfDue = true;
        continue;
      }
      if (crlfDue) {
        if (raw.length < 2) break;
        raw = raw.slice(2);
        crlfDue = false;
      }
      const eol = raw.indexOf('\r\n');
      if (eol < 0) break;
      const size = Number.parseInt(raw.slice(0, eol), 16);
      raw = raw.slice(eol + 2);
      if (!(size > 0)) break; // last chunk (or garbage): the body is over
      remaining = size;
    }
    return out;
  };

  socket.setNoDelay(true);
  socket.on('connect', () => {
    const extra = o.resume
      ? `Bosun-Epoch: ${o.resume.epoch}\r\nBosun-Held-Versions: ${o.resume.held}\r\n`
      : '';
    socket.write(
      `GET /v1/stream HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${o.token}\r\nAccept: text/event-stream\r\n${extra}\r\n`,
    );
  });
  socket.on('data', (chunk: Buffer) => {
    let text = chunk.toString('latin1');
    if (s.status === undefined) {
      head += text;
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.status = Number(head.slice(9, 12));
      chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head.slice(0, end));
      text = head.slice(end + 4);
      head = '';
    }
    s.buf += decode(text);
    if (s.putAt === undefined) {
      const start = s.buf.indexOf('event: put\n');
      const end = start < 0 ? -1 : s.buf.indexOf('\n\n', start);
      if (end < 0) return;
      s.putAt = now();
      s.putBytes = end + 2 - start;
      const data = s.buf.slice(start + 'event: put\ndata: '.length, end);
      if (data.startsWith('{')) {
        try {
          const put = JSON.parse(data) as {
            epoch: string;
            data: { relays: Record<string, { version: number }> };
          };
          s.epoch = put.epoch;
          const versions = Object.entries(put.data.relays).map(([id, r]) => `${id}=${r.version}`);
          if (versions.length > 0) s.held = versions.sort().join(',');
        } catch {
          // not bosun's put (a baseline's padding)
        }
      }
      s.buf = s.buf.slice(end + 2);
      o.onPut?.(s);
    }
    if (s.buf.length > 0) o.onData?.(s);
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    s.closed = true;
    o.onClose?.(s);
  });
  return s;
}

/**
 * Takes the next complete event from `s.buf` (comments and blank blocks skipped), or undefined when
 * no complete event is buffered yet. `data` lines are joined with LF (§2).
 */
export function takeEvent(s: SseStream): { event: string; data: string } | undefined {
  for (;;) {
    const end = s.buf.indexOf('\n\n');
    if (end < 0) return undefined;
    const block = s.buf.slice(0, end);
    s.buf = s.buf.slice(end + 2);
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
    }
    if (data.length > 0) return { event, data: data.join('\n') };
  }
}
