import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { request } from 'node:http';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { waitOn } from '../support/wait-on.js';

/** A test client for `GET /v1/activities/stream`: keeps every event, comment and the raw text. */
export interface SseClient {
  status: number;
  headers: IncomingHttpHeaders;
  events: EventSourceMessage[];
  comments: string[];
  raw: () => string;
  /** Resolves once `predicate` holds for the events so far (or rejects after `timeoutMs`). */
  until: (predicate: (events: EventSourceMessage[]) => boolean, timeoutMs?: number) => Promise<void>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close: () => void;
}

/**
 * Opens the stream with node:http on a connection of its own (no pool): closing it destroys that
 * socket, and no spare keep-alive connection is left behind to hold up the server's shutdown.
 */
export async function openStream(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const req = request(url, { agent: false, headers: { accept: 'text/event-stream', ...headers } });
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    req.on('response', resolve);
    req.on('error', reject);
    req.end();
  });
  const events: EventSourceMessage[] = [];
  const comments: string[] = [];
  let raw = '';
  const waiters = new Set<() => void>();
  let done = false;
  const parser = createParser({
    onEvent: (e) => {
      events.push(e);
      for (const w of waiters) w();
    },
    onComment: (c) => comments.push(c),
  });
  res.setEncoding('utf8');
  res.on('data', (text: string) => {
    raw += text;
    parser.feed(text);
  });
  const ended = new Promise<void>((resolve) => {
    res.on('close', () => {
      done = true;
      resolve();
      for (const w of waiters) w();
    });
  });
  const until = (predicate: (events: EventSourceMessage[]) => boolean, timeoutMs = 5000) => {
    const seen = () => JSON.stringify(events.map((e) => e.id ?? e.event));
    return waitOn(
      waiters,
      () => predicate(events) || undefined,
      () => done,
      (why) =>
        new Error(
          why === 'ended' ? `stream ended first; events: ${seen()}` : `timed out; events so far: ${seen()}`,
        ),
      timeoutMs,
    ).then(() => {});
  };
  return {
    status: res.statusCode ?? 0,
    headers: res.headers,
    events,
    comments,
    raw: () => raw,
    until,
    ended,
    close: () => req.destroy(),
  };
}

/** The activity events (not `ready`), parsed. */
export const activities = (events: EventSourceMessage[]) =>
  events.filter((e) => e.event === undefined).map((e) => ({ id: e.id, ...JSON.parse(e.data) }));

export const ready = (events: EventSourceMessage[]) => events.some((e) => e.event === 'ready');
