/**
 * The management API's handlers, one per route (docs/zooid-contract.md §1): each checks in the
 * contract's order (existence, body size, JSON, validation, uniqueness) and writes the config only
 * when every check passed.
 */
import { decodeConfig, deepMerge, isObject, jsonKind, parseJson, sortKeysDeep } from './go-json.js';
import { errorReply, jsonReply, type Reply } from './reply.js';
import { clone, type RelayConfigs } from './state.js';
import type { ZooidStoredConfig, ZooidVariant } from './types.js';
import { validate } from './validate.js';

export interface RouteContext {
  configs: RelayConfigs;
  variant: ZooidVariant;
  /** See ZooidEmulatorOptions.patchClearsSecret. */
  patchClearsSecret: boolean;
}

export interface RequestBody {
  body: Buffer;
  /** Over zooid's 1 MiB limit: `body` holds only its start. */
  tooLarge: boolean;
}

const TOO_LARGE = 'failed to read body: http: request body too large';

function decodeBody(
  ctx: RouteContext,
  raw: Buffer,
  prefix: string,
): { config: ZooidStoredConfig } | { reply: Reply } {
  const parsed = parseJson(raw.toString('utf8'));
  if ('error' in parsed) return { reply: errorReply(400, `${prefix}${parsed.error}`) };
  const { config, error } = decodeConfig(parsed.value, ctx.variant);
  if (error) return { reply: errorReply(400, `${prefix}${error}`) };
  return { config };
}

/** Validation, then uniqueness (a new relay conflicts with every stored one), then the write. */
function checkAndWrite(
  ctx: RouteContext,
  id: string,
  config: ZooidStoredConfig,
  isNew: boolean,
): Reply | null {
  const invalid = validate(config, ctx.variant);
  if (invalid) return errorReply(400, invalid);
  const conflict = ctx.configs.uniquenessError(isNew ? null : id, config);
  if (conflict) return errorReply(409, conflict);
  ctx.configs.write(id, config);
  return null;
}

/** POST and PUT: the body is the whole config, decoded and checked like zooid does before storing it. */
function writeWhole(
  ctx: RouteContext,
  id: string,
  { body, tooLarge }: RequestBody,
  isNew: boolean,
): Reply | null {
  if (tooLarge) return errorReply(400, TOO_LARGE);
  const decoded = decodeBody(ctx, body, 'invalid json config: ');
  if ('reply' in decoded) return decoded.reply;
  return checkAndWrite(ctx, id, decoded.config, isNew);
}

export function createRelay(ctx: RouteContext, id: string, request: RequestBody): Reply {
  if (ctx.configs.has(id)) return errorReply(409, 'relay with this id already exists');
  return writeWhole(ctx, id, request, true) ?? jsonReply(201, { message: 'relay created successfully' });
}

export function replaceRelay(ctx: RouteContext, id: string, request: RequestBody): Reply {
  if (!ctx.configs.has(id)) return errorReply(404, 'relay not found');
  return writeWhole(ctx, id, request, false) ?? jsonReply(200, { message: 'relay updated successfully' });
}

/** zooid merges the patch into the stored config as a map, then decodes the result like a body. */
export function patchRelay(ctx: RouteContext, id: string, { body, tooLarge }: RequestBody): Reply {
  const existing = ctx.configs.get(id);
  if (!existing) return errorReply(404, 'relay not found');
  if (tooLarge) return errorReply(400, TOO_LARGE);
  const parsed = parseJson(body.toString('utf8'));
  if ('error' in parsed) return errorReply(400, `invalid json: ${parsed.error}`);
  if (parsed.value !== null && !isObject(parsed.value)) {
    return errorReply(
      400,
      `invalid json: json: cannot unmarshal ${jsonKind(parsed.value)} into Go value of type map[string]interface {}`,
    );
  }
  const base = clone(existing) as unknown as Record<string, unknown>;
  if (ctx.patchClearsSecret) base.secret = '';
  if (parsed.value) deepMerge(base, parsed.value);
  const { config, error } = decodeConfig(sortKeysDeep(base), ctx.variant);
  if (error) return errorReply(400, error);
  return checkAndWrite(ctx, id, config, false) ?? jsonReply(200, { message: 'relay patched successfully' });
}

export function deleteRelay(ctx: RouteContext, id: string): Reply {
  if (!ctx.configs.has(id)) return errorReply(404, 'relay not found');
  try {
    ctx.configs.write(id, null);
  } catch (err) {
    return errorReply(500, `failed to delete config: ${(err as Error).message}`);
  }
  return jsonReply(200, { message: 'relay deleted successfully' });
}

/** V2 only: the owner and every pubkey of a role other than `member`, sorted. */
export function listMembers(ctx: RouteContext, id: string): Reply {
  const c = ctx.configs.get(id);
  if (!c) return errorReply(404, 'relay not found');
  const set = new Set<string>();
  if (c.info.pubkey) set.add(c.info.pubkey);
  for (const [name, role] of Object.entries(c.roles)) {
    if (name === 'member') continue;
    for (const pk of role.pubkeys) if (pk) set.add(pk);
  }
  return jsonReply(200, { members: [...set].sort() });
}
