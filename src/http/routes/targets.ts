import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { SyncStatus } from '../../domain/relay.js';
import {
  createTargetSchema,
  DEFAULT_TARGET,
  type FleetRecord,
  fleetTargetName,
  type Target,
  type TargetView,
  targetNotFound,
  updateTargetSchema,
  viewTarget,
} from '../../domain/target.js';
import type { TargetStatus } from '../../push/zooid/target-health.js';
import type { RelayCount, Store } from '../../store/port.js';
import type { AppDeps } from '../deps.js';
import { routeGroup } from './define.js';
import { principalOf } from './params.js';

type StatusCounts = Record<SyncStatus, number>;
const noCounts = (): StatusCounts => ({ pending: 0, synced: 0, retrying: 0, failed: 0, pull: 0 });

/** Live relays by fleet and sync status (deleted relays whose delete is still pending are left out). */
function countsByFleet(counts: readonly RelayCount[]): Map<string, StatusCounts> {
  const byFleet = new Map<string, StatusCounts>();
  for (const c of counts) {
    if (c.deleted) continue;
    const into = byFleet.get(c.fleet) ?? noCounts();
    into[c.status] += c.n;
    byFleet.set(c.fleet, into);
  }
  return byFleet;
}

export interface FleetSummary {
  name: string;
  /** A target's name, `default`, or null: pull-only. */
  target: string | null;
  relays: StatusCounts & { total: number };
}

/** Every fleet that has relays or a row, with its target and its live relays by sync status. */
export async function fleetSummaries(store: Store): Promise<FleetSummary[]> {
  const [rows, counts] = await Promise.all([store.listFleets(), store.relayCounts()]);
  const byFleet = countsByFleet(counts);
  const records = new Map(rows.map((r) => [r.name, r]));
  const names = [...new Set([...records.keys(), ...byFleet.keys()])].sort();
  return names.map((name) => {
    const c = byFleet.get(name) ?? noCounts();
    const record: FleetRecord | undefined = records.get(name);
    return {
      name,
      target: record ? fleetTargetName(record.target) : DEFAULT_TARGET,
      relays: { ...c, total: c.pending + c.synced + c.retrying + c.failed + c.pull },
    };
  });
}

/** A target as the API shows it, with its health (`up`, `error`, `syncFailures`, …) when known. */
export type ShownTarget = TargetView & Partial<TargetStatus>;

/**
 * How targets are shown: `default` (from the environment; null when ZOOID_API_URL is not set) and
 * the registered ones, each with its health. Never a secret key: `pubkey` is the one to whitelist.
 */
export function targetViews(deps: AppDeps) {
  const defaultPubkey = deps.targetDefaults?.pubkey ?? null;
  const withHealth = (t: TargetView): ShownTarget => {
    const health = deps.targetHealth?.(t.name);
    // A health found at another URL is of the zooid the target pointed to before it was changed.
    return health && health.url === t.url ? { ...health, ...t } : t;
  };
  const defaultView = (): ShownTarget | null => {
    const url = deps.targetDefaults?.url;
    if (!url) return null;
    return withHealth({
      name: DEFAULT_TARGET,
      url,
      verify_url: deps.targetDefaults?.verifyUrl ?? null,
      pubkey: defaultPubkey,
      key: 'default',
      created_at: null,
      updated_at: null,
    });
  };
  const view = (t: Target) => withHealth(viewTarget(t, defaultPubkey));
  return {
    defaultView,
    view,
    /** `default` first (when configured), then the registered targets by name. */
    all: async (): Promise<ShownTarget[]> => {
      const first = defaultView();
      return [...(first ? [first] : []), ...(await deps.store.listTargets()).map(view)];
    },
    /** One target by name; null when there is none. */
    one: async (name: string): Promise<ShownTarget | null> =>
      name === DEFAULT_TARGET
        ? defaultView()
        : await deps.store.getTarget(name).then((t) => (t ? view(t) : null)),
  };
}

const targetName = (request: FastifyRequest) => (request.params as { name: string }).name;

/**
 * `/v1/targets`: the zooid instances bosun pushes to (admin only). `default` is the one
 * ZOOID_API_URL and BOSUN_SECRET_KEY define: listed when configured, never stored or changed here.
 * A target's secret key is never shown; its `pubkey` is the one to list in that zooid's
 * API_WHITELIST.
 */
export function registerTargetRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { command, store } = deps;
  const routes = routeGroup(app, { tag: 'targets', access: 'admin' });
  const name = { name: z.string().describe('target name') };
  const defaultPubkey = deps.targetDefaults?.pubkey ?? null;
  const targets = targetViews(deps);
  const { view } = targets;

  routes.post(
    '/v1/targets',
    {
      summary: 'Register a zooid instance (answers its pubkey for API_WHITELIST, never its key)',
      body: { schema: createTargetSchema, parsedBy: 'domain', required: true },
      responses: { 201: { description: 'the target' } },
      errors: [409],
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const target = await command.createTarget(principal, request.body, {
        defaultKey: defaultPubkey !== null,
      });
      return reply.status(201).send(view(target));
    },
  );

  routes.get(
    '/v1/targets',
    {
      summary:
        'zooid targets: `default` (ZOOID_API_URL) with its last health probe, then the registered ones',
      responses: { 200: { description: '`{"targets": [...]}`' } },
    },
    async () => {
      return { targets: await targets.all() };
    },
  );

  routes.get(
    '/v1/targets/:name',
    {
      summary: 'A target, the fleets pinned to it and their relays by sync status',
      params: name,
      responses: { 200: { description: 'the target' } },
      errors: [404],
    },
    async (request) => {
      const wanted = targetName(request);
      const shown = await targets.one(wanted);
      if (!shown) throw targetNotFound(wanted);
      const fleets = (await fleetSummaries(store)).filter((f) => f.target === wanted);
      const relays = noCounts();
      for (const f of fleets) for (const s of Object.keys(relays) as SyncStatus[]) relays[s] += f.relays[s];
      return { ...shown, fleets: fleets.map((f) => f.name), relays };
    },
  );

  routes.patch(
    '/v1/targets/:name',
    {
      summary: 'Change a target’s url, secret_key or verify_url (null resets the last two)',
      params: name,
      body: { schema: updateTargetSchema, parsedBy: 'domain', required: true, mergePatch: true },
      responses: { 200: { description: 'the target' } },
      errors: [404, 409],
    },
    async (request) => {
      const principal = principalOf(request);
      return view(
        await command.updateTarget(principal, targetName(request), request.body, {
          defaultKey: defaultPubkey !== null,
        }),
      );
    },
  );

  routes.delete(
    '/v1/targets/:name',
    {
      summary: 'Remove a target (refused while a fleet is pinned to it or a relay lives on it)',
      params: name,
      responses: { 204: { description: 'removed' } },
      errors: [404, 409],
    },
    async (request, reply) => {
      const principal = principalOf(request);
      await command.deleteTarget(principal, targetName(request));
      return reply.status(204).send();
    },
  );
}
