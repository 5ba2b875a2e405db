import { z } from 'zod';
import { isValidSecretKey } from './domain/keys.js';
import { describeIssues } from './domain/relay.js';
import type { RetryPolicy } from './observer/backoff.js';

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
  sync: { concurrency: number; retry: RetryPolicy; timeoutMs: number };
}

const int = (min: number, max: number, fallback: number) =>
  z
    .string()
    .regex(/^\d+$/, `must be a whole number from ${min} to ${max}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `must be a whole number from ${min} to ${max}`)
    .default(fallback);

const schema = z
  .object({
    BOSUN_DATABASE_URL: z
      .string()
      .regex(/^(sqlite:.+|postgres(ql)?:\/\/.+)$/, 'must be sqlite:<file> or postgres://…')
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
    BOSUN_SYNC_CONCURRENCY: int(1, 1000, 20),
    BOSUN_SYNC_TIMEOUT_MS: int(100, 600_000, 10_000),
    BOSUN_RETRY_BASE_MS: int(1, 3_600_000, 1000),
    BOSUN_RETRY_CAP_MS: int(1, 86_400_000, 300_000),
    BOSUN_RETRY_MAX_ATTEMPTS: int(1, 1000, 10),
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

export function loadServeConfig(
  env: Record<string, string | undefined>,
  flags: { port?: string; host?: string; databaseUrl?: string; logLevel?: string } = {},
): ServeConfig {
  const merged = clean({
    ...env,
    ...(flags.port !== undefined ? { PORT: flags.port } : {}),
    ...(flags.host !== undefined ? { BOSUN_HOST: flags.host } : {}),
    ...(flags.databaseUrl !== undefined ? { BOSUN_DATABASE_URL: flags.databaseUrl } : {}),
    ...(flags.logLevel !== undefined ? { BOSUN_LOG_LEVEL: flags.logLevel } : {}),
  });
  const result = schema.safeParse(merged);
  if (!result.success) throw new ConfigError(`invalid configuration: ${describeIssues(result.error)}`);
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
      timeoutMs: c.BOSUN_SYNC_TIMEOUT_MS,
      retry: {
        baseMs: c.BOSUN_RETRY_BASE_MS,
        capMs: Math.max(c.BOSUN_RETRY_CAP_MS, c.BOSUN_RETRY_BASE_MS),
        maxAttempts: c.BOSUN_RETRY_MAX_ATTEMPTS,
        jitter: 0.1,
      },
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
