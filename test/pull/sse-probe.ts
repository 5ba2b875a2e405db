/**
 * A raw client of the real `GET /v1/stream` for server tests: keeps every event and comment in
 * arrival order with the time it arrived, parses event data, and checks the per-connection version
 * rule (docs/stream-protocol.md §9.2) on everything it received.
 */
import { createParser } from 'eventsource-parser';
import { expect } from 'vitest';
import { waitOn } from '../support/wait-on.js';

export interface ProbeEvent {
  event: string;
  data: any;
  raw: string;
  /** Index among all frames (events and comments) of the connection. */
  seq: number;
}

export interface Probe {
  status: number;
  headers: Headers;
  /** Non-SSE body (errors). */
  body: any;
  events: ProbeEvent[];
  comments: { text: string; seq: number; at: number }[];
  /** `retry:` fields received (§2), with their place among the frames. */
  retries: { ms: number; seq: number }[];
  /** Resolves once the predicate holds (polls on every frame), or rejects after timeoutMs. */
  until(predicate: (p: Probe) => boolean, what?: string, timeoutMs?: number): Promise<void>;
  ended: Promise<void>;
  isEnded(): boolean;
  close(): void;
  /** Every relay version this connection received, by id, in order (puts, patches, deletes). */
  versions(): Map<string, number[]>;
}

export async function probe(
  url: string,
  token: string | undefined,
  headers: Record<string, string> = {},
  now: () => number = Date.now,
): Promise<Probe> {
  const abort = new AbortController();
  const res = await fetch(`${url}/v1/stream`, {
    headers: {
      accept: 'text/event-stream',
      ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    signal: abort.signal,
  });
  const events: ProbeEvent[] = [];
  const comments: Probe['comments'] = [];
  const retries: Probe['retries'] = [];
  const waiters = new Set<() => void>();
  let seq = 0;
  let ended = false;
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  const p: Probe = {
    status: res.status,
    headers: res.headers,
    body: undefined,
    events,
    comments,
    retries,
    until(predicate, what = 'condition', timeoutMs = 5000) {
      return waitOn(
        waiters,
        () => predicate(p) || undefined,
        () => ended,
        (why) =>
          new Error(
            why === 'ended'
              ? `stream ended before ${what}`
              : `timed out waiting for ${what}; got ${events.map((e) => e.event).join(',')}`,
          ),
        timeoutMs,
      ).then(() => {});
    },
    ended: Promise.resolve(),
    isEnded: () => ended,
    close: () => abort.abort(),
    versions() {
      const out = new Map<string, number[]>();
      const add = (id: string, v: number) => out.set(id, [...(out.get(id) ?? []), v]);
      for (const e of events) {
        if (e.event === 'put')
          for (const [id, rep] of Object.entries<any>(e.data.data.relays)) add(id, rep.version);
        if (e.event === 'patch') add(e.data.path.slice('relays/'.length), e.data.data.version);
        if (e.event === 'delete') add(e.data.path.slice('relays/'.length), e.data.version);
      }
      return out;
    },
  };
  if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    const text = await res.text();
    try {
      p.body = JSON.parse(text);
    } catch {
      p.body = text;
    }
    ended = true;
    return p;
  }
  const parser = createParser({
    onEvent: (e) => {
      events.push({ event: e.event ?? 'message', data: safeJson(e.data), raw: e.data, seq: seq++ });
      wake();
    },
    onComment: (c) => {
      comments.push({ text: c.trim(), seq: seq++, at: now() });
      wake();
    },
    onRetry: (ms) => {
      retries.push({ ms, seq: seq++ });
      wake();
    },
  });
  p.ended = (async () => {
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } catch {
      // aborted or reset
    } finally {
      ended = true;
      wake();
    }
  })();
  return p;
}

function safeJson(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** §9.2 on one connection: per relay, versions strictly increase. */
export function expectIncreasing(p: Probe): void {
  for (const [id, versions] of p.versions()) {
    for (let i = 1; i < versions.length; i++) {
      expect(versions[i]!, `relay ${id} versions ${versions.join(',')}`).toBeGreaterThan(versions[i - 1]!);
    }
  }
}
