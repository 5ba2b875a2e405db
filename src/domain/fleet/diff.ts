import { jsonEqual } from '../relay.js';

/** One changed leaf field; `before`/`after` are absent when the field did not / does not exist. */
export interface FieldChange {
  field: string;
  before?: unknown;
  after?: unknown;
}

export const SENSITIVE = '(sensitive)';
const SENSITIVE_FIELDS = new Set(['secret', 'livekit.api_secret']);

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const mask = (field: string, value: unknown) =>
  SENSITIVE_FIELDS.has(field) && value !== undefined && value !== '' ? SENSITIVE : value;

/**
 * Field-level diff of two relay documents, one entry per changed leaf (`policy.public_join`),
 * arrays compared whole, sorted by field. Secret values are shown only as "(sensitive)".
 */
export function diffDocuments(before: unknown, after: unknown): FieldChange[] {
  const out: FieldChange[] = [];
  walk(before, after, '', out);
  return out.sort((a, b) => (a.field < b.field ? -1 : a.field > b.field ? 1 : 0));
}

const join = (prefix: string, key: string) => (prefix ? `${prefix}.${key}` : key);

function walk(before: unknown, after: unknown, prefix: string, out: FieldChange[]): void {
  if (isObject(before) || isObject(after)) {
    if (isObject(before) && isObject(after)) {
      for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
        walk(before[key], after[key], join(prefix, key), out);
      }
      return;
    }
    // An object replaced by a leaf or the reverse: list the object's leaves against the other side.
    if (isObject(before))
      for (const [k, v] of Object.entries(before)) walk(v, undefined, join(prefix, k), out);
    else if (before !== undefined) walk(before, undefined, prefix, out);
    if (isObject(after)) for (const [k, v] of Object.entries(after)) walk(undefined, v, join(prefix, k), out);
    else if (after !== undefined) walk(undefined, after, prefix, out);
    return;
  }
  if (jsonEqual(before, after)) return;
  const change: FieldChange = { field: prefix };
  if (before !== undefined) change.before = mask(prefix, before);
  if (after !== undefined) change.after = mask(prefix, after);
  out.push(change);
}

/**
 * The RFC 7396 merge patch that turns `from` into `to` (keys missing from `to` become null), so a
 * declarative document can go through the same patch rules as `PATCH /v1/relays/:id`.
 */
export function mergeDiff(
  from: Record<string, unknown>,
  to: Record<string, unknown>,
): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  for (const key of Object.keys(from)) if (!Object.hasOwn(to, key)) patch[key] = null;
  for (const [key, value] of Object.entries(to)) {
    const old = from[key];
    if (isObject(old) && isObject(value)) {
      const sub = mergeDiff(old, value);
      if (Object.keys(sub).length) patch[key] = sub;
    } else if (!jsonEqual(old, value)) {
      patch[key] = value;
    }
  }
  return patch;
}
