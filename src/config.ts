import { hostname } from 'node:os';
import { z } from 'zod';
import { ACTIVITY_RETENTION } from './activity-retention.js';
import { CREDENTIAL_EXPIRY } from './auth/credential-expiry.js';
import { formatDuration, parseDuration } from './domain/duration.js';
import { isValidSecretKey } from './domain/keys.js';
import { describeIssues } from './domain/relay.js';
import type { ChoreSettings } from './lifecycle/chore.js';
import { DRIFT_REPAIR, RESYNC, RESYNC_FAILED, RETRY_SWEEPER } from './push/chores.js';
import { SYNC_CONCURRENCY } from './push/observer.js';
import type { RetryPolicy } from './push/retry-policy.js';
import { TARGET_HEALTH } from './push/zooid/target-health.js';
import { checkPostgresUrl } from './store/database-url.js';

/**
 * Serve configuration from flags and environment (flags win). Validated once at start; a bad value
 * stops bosun with one line per problem naming the variable.
 */
export interface ServeConfig {
  databaseUrl: string;
  port: number;
  host: string;
  adminToken: string | undefined;
  zooidApiUrl: string | undefined;
  secretKey: string | undefined;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  trustProxy: boolean;
  blossomS3Env: Record<string, string | undefined>;
  /** `signWorkers`: threads that sign NIP-98 headers for zooid; 0 signs on the main thread. */
  sync: {
    concurrency: number;
    /** Requests in flight to one target at most: a dead target holds no more workers than this. */
    targetConcurrency: number;
    /** How long a fleet's target is reused by push sync before it is read again. */
    routeTtlMs: number;
    retry: RetryPolicy;
    timeoutMs: number;
    signWorkers: number;
  };
  /** Each chore's interval, timeout and switch (`BOSUN_CHORE_<NAME>_*`), by chore name. */
  chores: Record<ChoreName, ChoreSettings>;
  activityRetentionMs: number;
  shutdownGraceMs: number;
  /** PostgreSQL pool and statement timeout (ignored on SQLite). */
  postgres: { poolSize: number; statementTimeoutMs: number };
  /** Worker lease TTL: the longest a dead holder keeps the workers from another replica. */
  leaseTtlMs: number;
  /** This replica's name (logs, /metrics, the lease connection); default `<hostname>:<pid>`. */
  replicaId: string;
  /** A fleet directory applied at start through the DB syncer (`--fleet`, BOSUN_FLEET_DIR). */
  fleetDir: string | undefined;
  /** The agents' autoconfig stream (absent: its defaults). */
  stream?: { heartbeatMs: number; retryMs: number; maxStreams: number };
  /** The dashboard's activity streams: concurrent streams in total and per token. */
  activityStream?: { maxStreams: number; maxStreamsPerToken: number };
  /** HTTP timeouts against slow clients (absent: buildApp's defaults). */
  http?: { headersTimeoutMs: number; requestTimeoutMs: number };
  /**
   * Live verification (src/live/): `url` is the zooid instance's own HTTP address (null: each relay
   * at https://<host>/); `intervalMs` 0 turns it off. Absent: off.
   */
  verify?: {
    url: string | null;
    intervalMs: number;
    graceMs: number;
    timeoutMs: number;
    concurrency: number;
  };
}

const int = (min: number, max: number, fallback: number) =>
  z
    .string()
    .regex(/^\d+$/, `must be a whole number from ${min} to ${max}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `must be a whole number from ${min} to ${max}`)
    .default(fallback);

const duration = (fallbackMs: number, minMs = 1) =>
  z
    .string()
    .transform((text, ctx) => {
      const ms = parseDuration(text);
      if (ms === null || ms < minMs) {
        ctx.addIssue({
          code: 'custom',
          message: `must be a duration of at least ${formatDuration(minMs)} such as 30s, 10m, 24h`,
        });
        return z.NEVER;
      }
      return ms;
    })
    .default(fallbackMs);

const bool = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0'], { message: 'must be true or false' })
    .default(fallback ? 'true' : 'false')
    .transform((v) => v === 'true' || v === '1');

/** Every chore an operator can configure; each defines its own defaults beside its domain. */
const CHORES = [
  RETRY_SWEEPER,
  DRIFT_REPAIR,
  RESYNC,
  RESYNC_FAILED,
  CREDENTIAL_EXPIRY,
  ACTIVITY_RETENTION,
  TARGET_HEALTH,
] as const;
export type ChoreName = (typeof CHORES)[number]['name'];

const choreSchema = z.object(
  Object.fromEntries(
    CHORES.flatMap(({ name, config: d }) => {
      const key = `BOSUN_CHORE_${name.toUpperCase()}`;
      return [
        [`${key}_INTERVAL`, duration(d.interval, 100)],
        [`${key}_TIMEOUT`, duration(d.timeout, 100)],
        [`${key}_ENABLED`, bool(d.enabled)],
      ];
    }),
  ) as Record<string, z.ZodType<number | boolean, string | undefined>>,
);

const schema = z
  .object({
    BOSUN_DATABASE_URL: z
      .string()
      .regex(/^(sqlite:.+|postgres(ql)?:\/\/.+)$/, 'must be sqlite:<file> or postgres://…')
      .superRefine((url, ctx) => {
        if (url.startsWith('sqlite:')) return;
        try {
          checkPostgresUrl(url);
        } catch (err) {
          ctx.addIssue({
            code: 'custom',
            message: (err as Error).message.replace(/^BOSUN_DATABASE_URL: /, ''),
          });
        }
      })
      .default('sqlite:./data/bosun.db'),
    PORT: z
      .string()
      .regex(/^\d{1,5}$/, 'must be a TCP port number (0-65535)')
      .transform(Number)
      .refine((p) => p <= 65535, 'must be a TCP port number (0-65535)')
      .default(8080),
    BOSUN_HOST: z.string().min(1).default('127.0.0.1'),
    BOSUN_ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
    ZOOID_API_URL: z
      .string()
      .url('must be an http(s) URL such as http://127.0.0.1:3334')
      .refine((u) => /^https?:\/\//.test(u), 'must start with http:// or https://')
      .optional(),
    BOSUN_SECRET_KEY: z
      .string()
      .refine(isValidSecretKey, 'must be a 64-character lowercase hex Nostr secret key')
      .optional(),
    BOSUN_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    BOSUN_TRUST_PROXY: z.enum(['true', 'false', '1', '0']).default('false'),
    BOSUN_SYNC_CONCURRENCY: int(1, 1000, SYNC_CONCURRENCY),
    // 0: BOSUN_SYNC_CONCURRENCY — one target alone gets every worker (halving it halved catch-up
    // with one target); a target that stops answering backs off after its first unanswered request.
    BOSUN_SYNC_TARGET_CONCURRENCY: int(0, 1000, 0),
    BOSUN_SYNC_ROUTE_TTL_MS: int(0, 600_000, 2000),
    BOSUN_SYNC_TIMEOUT_MS: int(100, 600_000, 10_000),
    // One thread beside the main one fills a 2-core machine; more only pays off with more cores.
    BOSUN_SIGN_WORKERS: int(0, 8, 1),
    BOSUN_RETRY_BASE_MS: int(1, 3_600_000, 1000),
    BOSUN_RETRY_CAP_MS: int(1, 86_400_000, 300_000),
    BOSUN_RETRY_MAX_ATTEMPTS: int(1, 1000, 10),
    BOSUN_PG_POOL_SIZE: int(1, 1000, 10),
    BOSUN_PG_STATEMENT_TIMEOUT_MS: int(0, 3_600_000, 30_000),
    BOSUN_LEASE_TTL_MS: int(1000, 600_000, 15_000),
    BOSUN_REPLICA_ID: z
      .string()
      .regex(/^[\w.:@-]{1,48}$/, 'must be 1-48 letters, digits or . : @ - _')
      .optional(),
    BOSUN_ACTIVITY_RETENTION: duration(30 * 86_400_000, 60_000),
    BOSUN_SHUTDOWN_GRACE: duration(10_000, 0),
    BOSUN_STREAM_HEARTBEAT: duration(15_000, 5_000).refine((ms) => ms <= 15_000, 'must be from 5s to 15s'),
    BOSUN_STREAM_RETRY: duration(1_000, 100).refine((ms) => ms <= 60_000, 'must be from 100ms to 60s'),
    BOSUN_STREAM_MAX_CONNECTIONS: int(1, 1_000_000, 20_000),
    BOSUN_ACTIVITY_STREAM_MAX_CONNECTIONS: int(1, 100_000, 1000),
    BOSUN_ACTIVITY_STREAM_MAX_PER_TOKEN: int(1, 1000, 8),
    BOSUN_HTTP_HEADERS_TIMEOUT_MS: int(100, 600_000, 10_000),
    BOSUN_HTTP_REQUEST_TIMEOUT_MS: int(100, 3_600_000, 120_000),
    BOSUN_FLEET_DIR: z.string().optional(),
    BOSUN_VERIFY_URL: z
      .string()
      .url('must be an http(s) URL such as http://10.0.0.5:3334 (the zooid instance, not a relay)')
      .refine(
        (u) => /^https?:\/\/[^/@]+\/?$/.test(u),
        'must be http(s)://host[:port] with no path or credentials',
      )
      .optional(),
    BOSUN_VERIFY_INTERVAL_MS: int(0, 86_400_000, 300_000),
    BOSUN_VERIFY_GRACE_MS: int(0, 3_600_000, 30_000),
    BOSUN_VERIFY_TIMEOUT_MS: int(100, 60_000, 5_000),
    BOSUN_VERIFY_CONCURRENCY: int(1, 256, 8),
  })
  .superRefine((env, ctx) => {
    if (env.ZOOID_API_URL && !env.BOSUN_SECRET_KEY) {
      ctx.addIssue({
        code: 'custom',
        path: ['BOSUN_SECRET_KEY'],
        message: 'is required when ZOOID_API_URL is set (it signs requests to zooid)',
      });
    }
  });

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Empty strings count as unset, as in most shells' `VAR= bosun serve`. */
function clean(env: Record<string, string | undefined>) {
  return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== ''));
}

/** The serve flags and the variable each one stands in for. */
const FLAGS = {
  port: ['PORT', '--port'],
  host: ['BOSUN_HOST', '--host'],
  databaseUrl: ['BOSUN_DATABASE_URL', '--database-url'],
  logLevel: ['BOSUN_LOG_LEVEL', '--log-level'],
  fleet: ['BOSUN_FLEET_DIR', '--fleet'],
} as const;

export function loadServeConfig(
  env: Record<string, string | undefined>,
  flags: { port?: string; host?: string; databaseUrl?: string; logLevel?: string; fleet?: string } = {},
): ServeConfig {
  const given = Object.entries(FLAGS).filter(([key]) => flags[key as keyof typeof FLAGS] !== undefined);
  const merged = clean({
    ...env,
    ...Object.fromEntries(given.map(([key, [variable]]) => [variable, flags[key as keyof typeof FLAGS]])),
  });
  // A problem is reported under the name the operator used: the flag when a flag set the value.
  const flagOf = new Map<PropertyKey, string>(given.map(([, [variable, flag]]) => [variable, flag]));
  const describe = (error: z.ZodError) =>
    describeIssues(
      new z.ZodError(
        error.issues.map((issue) => {
          const flag = flagOf.get(issue.path[0] ?? '');
          return flag ? { ...issue, path: [flag, ...issue.path.slice(1)] } : issue;
        }),
      ),
    );
  const result = schema.safeParse(merged);
  const chores = choreSchema.safeParse(merged);
  const problems = [result, chores].flatMap((r) => (r.success ? [] : [describe(r.error)]));
  if (!result.success || !chores.success)
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  const c = result.data;
  return {
    databaseUrl: c.BOSUN_DATABASE_URL,
    port: c.PORT,
    host: c.BOSUN_HOST,
    adminToken: c.BOSUN_ADMIN_TOKEN,
    zooidApiUrl: c.ZOOID_API_URL,
    secretKey: c.BOSUN_SECRET_KEY,
    logLevel: c.BOSUN_LOG_LEVEL,
    trustProxy: c.BOSUN_TRUST_PROXY === 'true' || c.BOSUN_TRUST_PROXY === '1',
    sync: {
      concurrency: c.BOSUN_SYNC_CONCURRENCY,
      targetConcurrency: c.BOSUN_SYNC_TARGET_CONCURRENCY || c.BOSUN_SYNC_CONCURRENCY,
      routeTtlMs: c.BOSUN_SYNC_ROUTE_TTL_MS,
      timeoutMs: c.BOSUN_SYNC_TIMEOUT_MS,
      signWorkers: c.BOSUN_SIGN_WORKERS,
      retry: {
        baseMs: c.BOSUN_RETRY_BASE_MS,
        capMs: Math.max(c.BOSUN_RETRY_CAP_MS, c.BOSUN_RETRY_BASE_MS),
        maxAttempts: c.BOSUN_RETRY_MAX_ATTEMPTS,
        jitter: 0.1,
      },
    },
    chores: Object.fromEntries(
      CHORES.map(({ name }) => {
        const key = `BOSUN_CHORE_${name.toUpperCase()}`;
        const env = chores.data;
        return [
          name,
          {
            interval: env[`${key}_INTERVAL`],
            timeout: env[`${key}_TIMEOUT`],
            enabled: env[`${key}_ENABLED`],
          },
        ];
      }),
    ) as Record<ChoreName, ChoreSettings>,
    activityRetentionMs: c.BOSUN_ACTIVITY_RETENTION,
    shutdownGraceMs: c.BOSUN_SHUTDOWN_GRACE,
    stream: {
      heartbeatMs: c.BOSUN_STREAM_HEARTBEAT,
      retryMs: c.BOSUN_STREAM_RETRY,
      maxStreams: c.BOSUN_STREAM_MAX_CONNECTIONS,
    },
    activityStream: {
      maxStreams: c.BOSUN_ACTIVITY_STREAM_MAX_CONNECTIONS,
      maxStreamsPerToken: c.BOSUN_ACTIVITY_STREAM_MAX_PER_TOKEN,
    },
    http: {
      headersTimeoutMs: c.BOSUN_HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: c.BOSUN_HTTP_REQUEST_TIMEOUT_MS,
    },
    postgres: { poolSize: c.BOSUN_PG_POOL_SIZE, statementTimeoutMs: c.BOSUN_PG_STATEMENT_TIMEOUT_MS },
    leaseTtlMs: c.BOSUN_LEASE_TTL_MS,
    replicaId: c.BOSUN_REPLICA_ID ?? `${hostname()}:${process.pid}`,
    fleetDir: c.BOSUN_FLEET_DIR,
    verify: {
      url: c.BOSUN_VERIFY_URL ?? null,
      intervalMs: c.BOSUN_VERIFY_INTERVAL_MS,
      graceMs: c.BOSUN_VERIFY_GRACE_MS,
      timeoutMs: c.BOSUN_VERIFY_TIMEOUT_MS,
      concurrency: c.BOSUN_VERIFY_CONCURRENCY,
    },
    blossomS3Env: {
      BLOSSOM_S3_REGION: env.BLOSSOM_S3_REGION,
      BLOSSOM_S3_BUCKET: env.BLOSSOM_S3_BUCKET,
      BLOSSOM_S3_ACCESS_KEY: env.BLOSSOM_S3_ACCESS_KEY,
      BLOSSOM_S3_SECRET_KEY: env.BLOSSOM_S3_SECRET_KEY,
      BLOSSOM_S3_ENDPOINT: env.BLOSSOM_S3_ENDPOINT,
    },
  };
}
