/**
 * One SSE event as the stream server writes it (src/pull/server/rep.ts), for fake servers in tests.
 * JSON never contains a raw line break.
 */
export function encodeSseEvent(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
