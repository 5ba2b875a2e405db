import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Nip98Verifier } from './auth/nip98.js';
import { TokenService } from './auth/tokens.js';
import { Command } from './command.js';
import type { ServeConfig } from './config.js';
import { type Clock, systemClock } from './domain/clock.js';
import { type Random, systemRandom } from './domain/random.js';
import { buildApp } from './http/app.js';
import { Infra } from './infra/infra.js';
import { createLogger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';
import { Notifier } from './notifier.js';
import { Observer } from './observer/observer.js';
import { Query } from './query.js';
import { openStore } from './store/open.js';
import type { Store } from './store/port.js';
import { blossomS3FromEnv } from './zooid/body.js';
import { ZooidClient } from './zooid/client.js';
import { createNip98Signer, nip98Ready } from './zooid/nip98.js';

export interface PeerDeps {
  clock?: Clock;
  logger?: Logger;
  random?: Random;
  /** The network, for tests that fault-inject below the zooid client. */
  fetch?: typeof fetch;
}

/**
 * One bosun process: every service created from config (`createPeer`), started together (`run`),
 * and closed in reverse order (`close`), like the Storj satellite's peers.
 */
export class Peer {
  readonly app: FastifyInstance;
  /** Push sync; null when ZOOID_API_URL is not set. */
  readonly infra: Infra | null;
  readonly observer: Observer | null;
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
    deps: { random: Random; fetch?: typeof fetch },
  ) {
    this.infra = config.zooidApiUrl && config.secretKey ? this.createInfra(deps) : null;
    this.observer = this.infra ? this.createObserver(this.infra) : null;
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
      readiness: {
        push_sync: () => {
          if (this.observer && !this.observer.running) throw new Error('starting');
        },
      },
    });
  }

  private createInfra(deps: { random: Random; fetch?: typeof fetch }): Infra {
    const client = new ZooidClient({
      apiUrl: this.config.zooidApiUrl!,
      signer: createNip98Signer(this.config.secretKey!, { clock: this.clock }),
      clock: this.clock,
      timeoutMs: this.config.sync.timeoutMs,
      ...(deps.fetch ? { fetch: deps.fetch } : {}),
    });
    return new Infra({
      store: this.store,
      command: this.command,
      client,
      blossomS3: blossomS3FromEnv(this.config.blossomS3Env),
      clock: this.clock,
      random: deps.random,
      retry: this.config.sync.retry,
      logger: this.logger.child({ service: 'infra' }),
      onSync: (e) => this.metrics.syncs.inc({ outcome: e.outcome, method: e.method }),
    });
  }

  private createObserver(infra: Infra): Observer {
    const m = this.metrics;
    return new Observer({
      store: this.store,
      notifier: this.notifier,
      clock: this.clock,
      logger: this.logger.child({ service: 'observer' }),
      concurrency: this.config.sync.concurrency,
      sync: async (relayId, signal) => {
        const end = m.syncDuration.startTimer();
        try {
          return await infra.syncRelay(relayId, { signal });
        } finally {
          end();
        }
      },
      onSyncStart: (ms) => m.commitToSyncStart.observe(ms / 1000),
      onOutcome: (o) => {
        if (o.kind === 'retry') m.retriesScheduled.inc();
      },
      onQueueDepth: (d) => m.queueDepth.set(d),
      onCursor: (c) => m.observerCursor.set(c),
    });
  }

  static async create(config: ServeConfig, deps: PeerDeps = {}): Promise<Peer> {
    const logger = deps.logger ?? createLogger({ level: config.logLevel });
    const clock = deps.clock ?? systemClock;
    const random = deps.random ?? systemRandom;
    const store = openStore(config.databaseUrl);
    const notifier = new Notifier((err) => logger.error({ err }, 'change listener failed'));
    const command = new Command(store, notifier, clock);
    const query = new Query(store);
    const tokens = new TokenService(store, clock, config.adminToken);
    const peer = new Peer(config, logger, clock, store, notifier, command, query, tokens, createMetrics(), {
      random,
      ...(deps.fetch ? { fetch: deps.fetch } : {}),
    });
    await peer.bootstrapAdmin();
    return peer;
  }

  /** Starts serving; resolves with the listening URL. */
  async listen(): Promise<string> {
    const url = await this.app.listen({ port: this.config.port, host: this.config.host });
    if (this.observer && this.infra) {
      // Signing dominates push sync; wait for the WebAssembly signer (7-10x the pure JS rate).
      await nip98Ready();
      await this.observer.start();
      this.logger.info(
        { zooid: this.config.zooidApiUrl, pubkey: this.infra.pubkey },
        'push sync enabled: zooid must list this pubkey in API_WHITELIST',
      );
    } else {
      this.logger.warn('push sync disabled: ZOOID_API_URL is not set');
    }
    this.logger.info({ url, database: this.config.databaseUrl.split(':')[0] }, 'bosun listening');
    return url;
  }

  /** Stops accepting, lets in-flight requests finish, then closes the database. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.app.close();
      await this.observer?.stop();
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
