import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Nip98Verifier } from './auth/nip98.js';
import { TokenService } from './auth/tokens.js';
import { Command } from './command.js';
import type { ServeConfig } from './config.js';
import { type Clock, systemClock } from './domain/clock.js';
import { buildApp } from './http/app.js';
import { createMetrics, type Metrics } from './http/metrics.js';
import { createLogger } from './logger.js';
import { Notifier } from './notifier.js';
import { Query } from './query.js';
import { openStore } from './store/open.js';
import type { Store } from './store/port.js';

export interface PeerDeps {
  clock?: Clock;
  logger?: Logger;
}

/**
 * One bosun process: every service created from config (`createPeer`), started together (`run`),
 * and closed in reverse order (`close`), like the Storj satellite's peers.
 */
export class Peer {
  readonly app: FastifyInstance;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly config: ServeConfig,
    readonly logger: Logger,
    readonly clock: Clock,
    readonly store: Store,
    readonly notifier: Notifier,
    readonly command: Command,
    readonly query: Query,
    readonly tokens: TokenService,
    readonly metrics: Metrics,
  ) {
    this.app = buildApp({
      store,
      command,
      query,
      tokens,
      nip98: new Nip98Verifier(),
      clock,
      logger,
      metrics,
      trustProxy: config.trustProxy,
    });
  }

  static async create(config: ServeConfig, deps: PeerDeps = {}): Promise<Peer> {
    const logger = deps.logger ?? createLogger({ level: config.logLevel });
    const clock = deps.clock ?? systemClock;
    const store = openStore(config.databaseUrl);
    const notifier = new Notifier((err) => logger.error({ err }, 'change listener failed'));
    const command = new Command(store, notifier, clock);
    const query = new Query(store);
    const tokens = new TokenService(store, clock, config.adminToken);
    const peer = new Peer(config, logger, clock, store, notifier, command, query, tokens, createMetrics());
    await peer.bootstrapAdmin();
    return peer;
  }

  /** Starts serving; resolves with the listening URL. */
  async listen(): Promise<string> {
    const url = await this.app.listen({ port: this.config.port, host: this.config.host });
    this.logger.info({ url, database: this.config.databaseUrl.split(':')[0] }, 'bosun listening');
    if (!this.config.zooidApiUrl) {
      this.logger.warn('push sync disabled: ZOOID_API_URL is not set');
    }
    return url;
  }

  /** Stops accepting, lets in-flight requests finish, then closes the database. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.app.close();
      await this.store.close();
    })();
    return this.closing;
  }

  /**
   * A fresh install has no way to sign in. Without BOSUN_ADMIN_TOKEN and any admin token, bosun
   * creates one and writes it (mode 0600) next to the SQLite file, never to the log.
   */
  private async bootstrapAdmin(): Promise<void> {
    if (await this.tokens.hasAdmin()) return;
    const { token } = await this.tokens.create({ role: 'admin', name: 'generated-admin' });
    const dir = this.config.databaseUrl.startsWith('sqlite:')
      ? dirname(this.config.databaseUrl.slice('sqlite:'.length))
      : 'data';
    const file = join(dir, 'admin-token');
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    this.logger.warn({ file }, 'no admin token existed: generated one and wrote it to this file (mode 0600)');
  }
}
