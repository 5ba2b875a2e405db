/** What a handler answers, and Go's JSON and plain-text encodings of it. */

export interface Reply {
  status: number;
  body: string;
  contentType: string;
  headers?: Record<string, string>;
}

/** Go's json.Encoder: HTML-escaped, newline-terminated. */
export function goJson(value: unknown): string {
  return `${JSON.stringify(value).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026')}\n`;
}

export const jsonReply = (status: number, value: unknown): Reply => ({
  status,
  body: goJson(value),
  contentType: 'application/json',
});
export const errorReply = (status: number, error: string) => jsonReply(status, { error });
export const textReply = (status: number, text: string, headers?: Record<string, string>): Reply => ({
  status,
  body: `${text}\n`,
  contentType: 'text/plain; charset=utf-8',
  ...(headers ? { headers } : {}),
});
