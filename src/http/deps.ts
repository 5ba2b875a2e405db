import type { FastifyInstance, RouteOptions } from 'fastify';
import type { Logger } from 'pino';
import type { Nip98Verifier } from '../auth/nip98.js';
import type { TokenService } from '../auth/tokens.js';
import type { Command } from '../command.js';
import type { Clock } from '../domain/clock.js';
import type { Metrics } from '../metrics.js';
import type { Notifier } from '../notifier.js';
import type { TargetStatus } from '../push/zooid/target-health.js';
import type { Query } from '../query.js';
import type { Store } from '../store/port.js';
import type { ActivityStreamOptions } from './dashboard/stream.js';

/** What the HTTP app is built from; its own file so routes can name it without importing the app. */
export interface AppDeps {
  store: Store;
  command: Command;
  query: Query;
  tokens: TokenService;
  nip98: Nip98Verifier;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  /**
   * Extra readiness checks (e.g. the observer running); each throws with a reason when not ready,
   * or returns a word to show instead of `ok` (e.g. the worker lease: `holder` / `standby`).
   */
  readiness?: Record<string, () => unknown>;
  /**
   * A zooid target's health (its last probe and its recent syncs); null before the first probe or
   * sync, or with the target-health chore off.
   */
  targetHealth?: (target: string) => TargetStatus | null;
  /**
   * The target `default` (ZOOID_API_URL; null: none) and the pubkey of BOSUN_SECRET_KEY, which
   * signs for every target without its own key (null: not set).
   */
  /** The `default` target as the environment defines it (ZOOID_API_URL, its key, BOSUN_VERIFY_URL). */
  targetDefaults?: { url: string | null; pubkey: string | null; verifyUrl?: string | null };
  trustProxy?: boolean;
  /** The autoconfig stream server (`GET /v1/stream`), when this process serves agents. */
  streams?: { register(app: FastifyInstance): void; stats(): { streams: number } };
  /** Change wake-ups for the dashboard's activity stream (without it, the stream polls the log). */
  notifier?: Notifier;
  /** Agents connected to the stream server, when one runs (admin view on the dashboard). */
  agents?: () => unknown[];
  dashboard?: DashboardOptions;
  /** Slow-client timeouts (default HTTP_TIMEOUTS; env BOSUN_HTTP_HEADERS_TIMEOUT_MS / _REQUEST_TIMEOUT_MS). */
  http?: { headersTimeoutMs: number; requestTimeoutMs: number };
  /** Sees every route as it is registered, HEAD routes included (tests list them). */
  onRoute?: (route: RouteOptions) => void;
}

export interface DashboardOptions {
  ticketTtlMs?: number;
  stream?: Partial<ActivityStreamOptions>;
}
