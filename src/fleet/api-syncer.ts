import type { FleetApplyResult, FleetPlan } from '../domain/fleet/plan.js';
import type { RelayView } from '../domain/relay.js';
import { SyncApiError, SyncInternalError, syncErrorFrom } from './errors.js';
import type { LoadedFleet } from './files.js';
import { BaseSyncer } from './syncer.js';

export interface ApiSyncerOptions {
  server: string;
  token: string;
  fleet: LoadedFleet;
  prune?: boolean;
  fetch?: typeof fetch;
}

/** The sync state of a relay as the API shows it, for following scheduled syncs. */
export type RelaySyncView = RelayView['sync'] & { version: number };

/** Syncs against a remote bosun over its HTTP API with a bearer token (CI, the CLI). */
export class ApiSyncer extends BaseSyncer {
  private readonly server: string;
  private readonly fetch: typeof fetch;

  constructor(private readonly opts: ApiSyncerOptions) {
    super(opts.fleet.name);
    this.server = opts.server.replace(/\/+$/, '');
    this.fetch = opts.fetch ?? fetch;
  }

  protected requestPlan(): Promise<FleetPlan> {
    return this.call<FleetPlan>('POST', `${this.base()}/plan`, this.body());
  }

  protected requestApply(): Promise<FleetApplyResult> {
    return this.call<FleetApplyResult>('POST', `${this.base()}/apply`, this.body());
  }

  /** The sync state of every relay of the fleet the token can see, by id. */
  async syncStatus(): Promise<Map<string, RelaySyncView>> {
    const out = new Map<string, RelaySyncView>();
    for (let after: string | null = null; ; ) {
      const q = new URLSearchParams({ fleet: this.opts.fleet.name, limit: '1000' });
      if (after) q.set('after', after);
      const page = await this.call<{ relays: RelayView[]; next: string | null }>('GET', `/v1/relays?${q}`);
      for (const r of page.relays) out.set(r.id, { ...r.sync, version: r.version });
      if (!page.next) return out;
      after = page.next;
    }
  }

  private base(): string {
    return `/v1/fleets/${encodeURIComponent(this.opts.fleet.name)}`;
  }

  private body() {
    const { spec } = this.opts.fleet;
    if (!spec)
      throw new SyncInternalError(
        'the API syncer needs every file parsed: read the fleet without `previous`',
      );
    return { ...spec, prune: this.opts.prune ?? false };
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const resource = `fleet/${this.opts.fleet.name}`;
    let res: Response;
    try {
      res = await this.fetch(this.server + path, {
        method,
        headers: {
          authorization: `Bearer ${this.opts.token}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (err) {
      const why = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      const cause = Object.assign(new Error(`cannot reach bosun at ${this.server} (${why})`), {
        code: 'unreachable',
      });
      throw new SyncApiError(resource, cause);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      const cause = Object.assign(new Error(`unexpected non-JSON answer (HTTP ${res.status})`), {
        code: 'bad_response',
        status: res.status,
      });
      throw new SyncApiError(resource, cause);
    }
    if (!res.ok) {
      const e = (json as { error?: { code?: string; message?: string; resource?: string } } | undefined)
        ?.error;
      throw syncErrorFrom(
        {
          code: e?.code ?? 'error',
          message: e?.message ?? `HTTP ${res.status}`,
          resource: e?.resource,
          status: res.status,
        },
        resource,
      );
    }
    return json as T;
  }
}
