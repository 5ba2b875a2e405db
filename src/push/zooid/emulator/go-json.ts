/**
 * Go's encoding/json, as far as zooid's config struct needs it: decoding into the Config struct,
 * syntax error texts, and the PATCH merge.
 */
import type { ZooidStoredConfig, ZooidVariant } from './types.js';

type Spec =
  | { t: 'string' }
  | { t: 'bool' }
  | { t: 'strings' }
  | { t: 'struct'; name: string; fields: Array<[string, Spec]> }
  | { t: 'map'; name: string; value: Spec };

const S: Spec = { t: 'string' };
const B: Spec = { t: 'bool' };
const struct = (name: string, fields: Array<[string, Spec]>): Spec => ({ t: 'struct', name, fields });

function configSpec(variant: ZooidVariant): Spec {
  const blossom: Array<[string, Spec]> = [['enabled', B]];
  if (variant === 'v2') {
    blossom.push(
      ['authenticated_read', B],
      ['adapter', S],
      [
        's3',
        struct('S3Config', [
          ['region', S],
          ['bucket', S],
          ['access_key', S],
          ['secret_key', S],
          ['endpoint', S],
          ['key_prefix', S],
        ]),
      ],
    );
  }
  return struct('Config', [
    ['host', S],
    ['schema', S],
    ['secret', S],
    ['inactive', B],
    [
      'info',
      struct('Info', [
        ['name', S],
        ['icon', S],
        ['description', S],
        ['pubkey', S],
      ]),
    ],
    [
      'policy',
      struct('Policy', [
        ['public_join', B],
        ['strip_signatures', B],
      ]),
    ],
    ['groups', struct('Groups', [['enabled', B]])],
    ['management', struct('Management', [['enabled', B]])],
    ['blossom', struct('Blossom', blossom)],
    [
      'livekit',
      struct('Livekit', [
        ['server_url', S],
        ['api_key', S],
        ['api_secret', S],
      ]),
    ],
    ['push', struct('Push', [['enabled', B]])],
    [
      'roles',
      {
        t: 'map',
        name: 'map[string]zooid.Role',
        value: struct('Role', [
          ['pubkeys', { t: 'strings' }],
          ['can_invite', B],
          ['can_manage', B],
        ]),
      },
    ],
  ]);
}

function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function zeroOf(spec: Spec): unknown {
  switch (spec.t) {
    case 'string':
      return '';
    case 'bool':
      return false;
    case 'strings':
      return [];
    case 'map':
      return {};
    case 'struct': {
      const out: Record<string, unknown> = {};
      for (const [k, s] of spec.fields) out[k] = zeroOf(s);
      return out;
    }
  }
}

export const jsonKind = (v: unknown) =>
  Array.isArray(v) ? 'array' : typeof v === 'object' ? 'object' : typeof v === 'boolean' ? 'bool' : typeof v;

const goTypeName = (spec: Spec) =>
  spec.t === 'string'
    ? 'string'
    : spec.t === 'bool'
      ? 'bool'
      : spec.t === 'strings'
        ? '[]string'
        : `zooid.${spec.name}`;

interface DecodeContext {
  error: string | null;
  structName: string;
}

/** Decodes `value` into `current` like Go: case-insensitive keys, unknown keys ignored, null a no-op. */
function decodeInto(current: unknown, value: unknown, spec: Spec, path: string, ctx: DecodeContext): unknown {
  const typeError = () => {
    ctx.error ??= path
      ? `json: cannot unmarshal ${jsonKind(value)} into Go struct field ${ctx.structName}.${path} of type ${goTypeName(spec)}`
      : `json: cannot unmarshal ${jsonKind(value)} into Go value of type ${goTypeName(spec)}`;
    return current;
  };
  if (value === null) {
    return spec.t === 'strings' ? [] : spec.t === 'map' ? {} : current;
  }
  switch (spec.t) {
    case 'string':
      return typeof value === 'string' ? value : typeError();
    case 'bool':
      return typeof value === 'boolean' ? value : typeError();
    case 'strings': {
      if (!Array.isArray(value)) return typeError();
      const out: string[] = [];
      for (const item of value) {
        if (item === null) out.push('');
        else if (typeof item === 'string') out.push(item);
        else {
          ctx.error ??= `json: cannot unmarshal ${jsonKind(item)} into Go struct field ${ctx.structName}.${path} of type string`;
          out.push('');
        }
      }
      return out;
    }
    case 'map': {
      if (typeof value !== 'object' || Array.isArray(value)) return typeError();
      const out = { ...(current as Record<string, unknown>) };
      for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
        setOwn(out, key, decodeInto(zeroOf(spec.value), v, spec.value, `${path}.${key}`, ctx));
      }
      return out;
    }
    case 'struct': {
      if (typeof value !== 'object' || Array.isArray(value)) return typeError();
      const out = { ...(current as Record<string, unknown>) };
      for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
        const field =
          spec.fields.find(([name]) => name === key) ??
          spec.fields.find(([name]) => name.toLowerCase() === key.toLowerCase());
        if (!field) continue;
        const [name, fieldSpec] = field;
        const outer = ctx.structName;
        ctx.structName = spec.name;
        out[name] = decodeInto(out[name], v, fieldSpec, path ? `${path}.${name}` : name, ctx);
        ctx.structName = outer;
      }
      return out;
    }
  }
}

export function decodeConfig(
  value: unknown,
  variant: ZooidVariant,
): { config: ZooidStoredConfig; error: string | null } {
  const spec = configSpec(variant);
  const ctx: DecodeContext = { error: null, structName: 'Config' };
  const config = decodeInto(zeroOf(spec), value, spec, '', ctx) as ZooidStoredConfig;
  return { config, error: ctx.error };
}

/** Roughly Go's syntax error texts, from V8's. */
function goSyntaxError(text: string, err: unknown): string {
  const message = err instanceof Error ? err.message : '';
  if (text.trim() === '' || /Unexpected end/.test(message)) return 'unexpected end of JSON input';
  const token = /Unexpected token '(.+?)'/.exec(message)?.[1];
  const pos = Number(/position (\d+)/.exec(message)?.[1] ?? -1);
  const ch = token ?? (pos >= 0 && pos < text.length ? text[pos] : undefined);
  if (ch === undefined) return 'unexpected end of JSON input';
  return `invalid character '${ch}' looking for beginning of value`;
}

export function parseJson(text: string): { value: unknown } | { error: string } {
  try {
    return { value: JSON.parse(text) };
  } catch (err) {
    return { error: goSyntaxError(text, err) };
  }
}

/** Go's json.Marshal of a map sorts keys: PATCH merges are re-decoded in that order. */
export function sortKeysDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeysDeep);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort())
      setOwn(out, key, sortKeysDeep((value as Record<string, unknown>)[key]));
    return out;
  }
  return value;
}

/** zooid's PATCH merge: null deletes, object onto object recurses, anything else replaces. */
export function deepMerge(dst: Record<string, unknown>, src: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(src)) {
    if (value === null) {
      delete dst[key];
      continue;
    }
    const existing = Object.hasOwn(dst, key) ? dst[key] : undefined;
    if (isObject(value) && isObject(existing)) {
      deepMerge(existing, value);
      continue;
    }
    setOwn(dst, key, value);
  }
}

export const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
