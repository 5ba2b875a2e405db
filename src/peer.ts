import { closeSync, existsSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Gauge } from 'prom-client';
import { ActivityRetention } from './activity-retention.js';
import { CredentialExpiry } from './auth/credential-expiry.js';
import { Nip98Verifier } from './auth/nip98.js';
import { TokenService } from './auth/tokens.js';
import { Command } from './command.js';
import type { ServeConfig } from './config.js';
import { makeDirs } from './dirs.js';
import { type Clock, sleep, systemClock } from './domain/clock.js';
import { publicKeyOf } from './domain/keys.js';
import { DEFAULT_REPAIR } from './domain/live.js';
import type { Principal } from './domain/principal.js';
import { type Random, systemRandom } from './domain/random.js';
import type { Relay } from './domain/relay.js';
import { DEFAULT_TARGET } from './domain/target.js';
import { buildApp } from './http/app.js';
import type { AppDeps } from './http/deps.js';
import type { Chore, ChoreSettings } from './lifecycle/chore.js';
import type { Cycle } from './lifecycle/cycle.js';
import { type Service, ServiceGroup } from './lifecycle/group.js';
import { fetchRelayInfo } from './live/fetch.js';
import { type FetchRelayInfo, LiveVerify, Verifier } from './live/verifier.js';
import { createLogger } from './logger.js';
import { createMetrics, type Metrics, watchPgPool, watchTargetLoad } from './metrics.js';
import type { Nip98Signer } from './nostr/nip98.js';
import { createPooledNip98Signer } from './nostr/signer-pool.js';
import { Notifier } from './notifier.js';
import { StreamServer } from './pull/server/stream-server.js';
import { DriftRepair, Resync, ResyncFailed, RetrySweeper } from './push/chores.js';
import { Observer, type PushQueue } from './push/observer.js';
import { ObserverSet } from './push/observer-set.js';
import { type Destination, Router } from './push/router.js';
import { Infra, mayHeal, type SyncOutcome } from './push/syncer.js';
import { blossomS3FromEnv } from './push/zooid/body.js';
import { ZooidClient, type ZooidResult } from './push/zooid/client.js';
import { TARGET_HEALTH, TargetHealth } from './push/zooid/target-health.js';
import { Query } from './query.js';
import { shownDatabaseUrl, adminTokenFile as tokenFileOf } from './store/database-url.js';
import { FencedStore } from './store/fenced-store.js';
import type { PushLeases, WorkerLease } from './store/lease.js';
import { openStore } from './store/open.js';
import type { Store } from './store/port.js';
import type { Replication } from './store/replication.js';
import { StorageHealth, WatchedStore } from './store/storage-errors.js';
import { FencedError } from './store/write-errors.js';

/** Who records a live repair as a resync when push is leased per target. */
const VERIFIER: Principal = { role: 'admin', actor: 'system:verifier' };
/** The metrics' `target` of the one observer that pushes to every target (not a valid target name). */
const ALL_TARGETS = '_all';
/**
 * A relay whose lock another target's sync holds is tried again this soon: only the relays that
 * target has in flight can be held (at most its in-flight limit), for as long as one request.
 */
const BUSY_RETRY_MS = 100;

export interface PeerDeps {
  clock?: Clock;
  logger?: Logger;
  random?: Random;
  /** The network below the zooid health probe (tests inject faults here). */
  fetch?: typeof fetch;
  /** Sees every HTTP route as it is registered (the OpenAPI test checks each is documented). */
  onRoute?: AppDeps['onRoute'];
  /** Reads a relay's NIP-11 document (live verification); tests inject faults here. */
  fetchRelayInfo?: FetchRelayInfo;
}

/**
 * One bosun process, wired like a Storj peer: `create` builds every service from config, `start`
 * runs them together in a ServiceGroup (a fatal error in one stops all), and `close` shuts them down
 * in reverse order — HTTP stops accepting first, chores stop, the observer drains in-flight syncs up
 * to the grace period — and closes the database last.
 */
export class Peer {
  readonly app: FastifyInstance;
  /** Push routing: each relay to its fleet's target (null: push sync is off). */
  readonly router: Router | null;
  /** Signs push sync's requests to zooid, on BOSUN_SIGN_WORKERS threads; null with push sync off. */
  readonly signer: Nip98Signer | null;
  /** The one observer of the worker lease holder (SQLite, or push not leased per target). */
  readonly observer: Observer | null;
  /**
   * PostgreSQL: push work is leased per target (src/store/postgres/target-leases.ts). Each target
   * this replica held has its own router and observer (cursor `observer:<target>`), run while it
   * holds that target's lease and fenced by its epoch. Null with SQLite or push sync off.
   */
  readonly pushLeases: PushLeases | null;
  readonly targetObservers: ObserverSet | null;
  private readonly targetRouters = new Map<string, Router>();
  /** Push sync as chores and the verifier ask it: the one observer, or the per-target ones. */
  readonly pushQueue: PushQueue | null;
  /** Every target's zooid client; their keep-alive connections close at shutdown. */
  private readonly zooidClients = new Set<ZooidClient>();
  readonly targetHealth: TargetHealth | null;
  /** Live verification (src/live/); null without push sync or with BOSUN_VERIFY_INTERVAL_MS=0. */
  readonly verifier: Verifier | null;
  /** The agents' autoconfig stream (`GET /v1/stream`). */
  readonly streams: StreamServer;
  /** The scheduled (enabled) chores, by name. */
  readonly chores = new Map<string, Chore>();
  /**
   * Of the replicas on one database, only the holder of this lease runs the observer, push sync
   * and the chores (src/store/lease.ts); their writes are fenced by its epoch.
   */
  readonly lease: WorkerLease;
  /** The workers' view of the store: sync-state commits and cursor writes carry the lease's fence. */
  private readonly workerStore: Store;
  private readonly signers = new Map<string, Nip98Signer>();
  /** Whether the database refuses writes (disk full, I/O errors): shown by /readyz. */
  readonly storage: StorageHealth;
  private readonly group: ServiceGroup;
  private readonly clock: Clock;
  private readonly random: Random;
  private started: Promise<string> | undefined;
  private running: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly config: ServeConfig,
    readonly logger: Logger,
    readonly store: Store,
    readonly notifier: Notifier,
    readonly command: Command,
    readonly query: Query,
    readonly tokens: TokenService,
    readonly metrics: Metrics,
    private readonly replication: Replication,
    deps: Required<Pick<PeerDeps, 'clock' | 'random'>> &
      Pick<PeerDeps, 'fetch' | 'onRoute' | 'fetchRelayInfo'> & { storage: StorageHealth },
  ) {
    this.storage = deps.storage;
    this.lease = replication.lease;
    this.workerStore = new FencedStore(store, () => this.lease.fence);
    this.clock = deps.clock;
    this.random = deps.random;
    // BOSUN_SECRET_KEY turns push sync on (ZOOID_API_URL requires it): without ZOOID_API_URL, the
    // relays of fleets on the target `default` fail with a clear error, those on other targets sync.
    this.signer = config.secretKey ? this.signerFor(config.secretKey) : null;
    const perTarget = this.signer !== null && replication.pushLeases !== undefined;
    this.router =
      this.signer && !perTarget
        ? this.createRouter(this.workerStore, (id, o) => this.observer?.enqueue(id, o))
        : null;
    if (this.router) watchTargetLoad(metrics, this.router);
    this.observer = this.router ? this.createObserver(this.router, this.workerStore, this.lease) : null;
    this.targetObservers = perTarget ? new ObserverSet() : null;
    this.pushLeases = perTarget ? this.createPushLeases(replication) : null;
    this.pushQueue = this.observer ?? this.targetObservers;
    this.verifier = this.pushQueue ? this.createVerifier(this.pushQueue, deps.fetchRelayInfo) : null;
    const resyncFailed = this.pushQueue ? new ResyncFailed(this.store, this.pushQueue, mayHeal) : null;
    this.targetHealth = config.chores[TARGET_HEALTH.name].enabled
      ? new TargetHealth(
          async () => [
            ...(config.zooidApiUrl ? [{ name: DEFAULT_TARGET, url: config.zooidApiUrl }] : []),
            ...(await store.listTargets()).map((t) => ({ name: t.name, url: t.url })),
          ],
          this.clock,
          deps.fetch ?? fetch,
          {
            onStatus: (name, status) => {
              const target = { target: name };
              if (status.up !== null) this.metrics.zooidUp.set(target, status.up ? 1 : 0);
              if (status.latencyMs !== null)
                this.metrics.zooidProbeSeconds.set(target, status.latencyMs / 1000);
            },
            onRemoved: (name) => {
              this.metrics.zooidUp.remove({ target: name });
              this.metrics.zooidProbeSeconds.remove({ target: name });
            },
            // Relays that failed while zooid was away need not wait for the slow pace.
            onRecovered: () => {
              if (this.lease.held || this.pushLeases) resyncFailed?.trigger();
            },
            onProbe: (name) => (this.router ?? this.targetRouters.get(name))?.release(name),
          },
        )
      : null;
    this.streams = new StreamServer({
      store,
      notifier,
      clock: this.clock,
      logger: logger.child({ component: 'stream' }),
      blossomS3: blossomS3FromEnv(config.blossomS3Env),
      onSent: (n) => metrics.streamEventsSent.inc(n),
      ...config.stream,
    });

    this.app = buildApp({
      ...(deps.onRoute ? { onRoute: deps.onRoute } : {}),
      streams: this.streams,
      agents: () => this.streams.agents(),
      store,
      command,
      query,
      tokens,
      nip98: new Nip98Verifier(),
      clock: this.clock,
      logger,
      metrics,
      trustProxy: config.trustProxy,
      ...(config.http ? { http: config.http } : {}),
      ...(config.activityStream ? { dashboard: { stream: config.activityStream } } : {}),
      targetHealth: (name) => this.targetHealth?.status(name) ?? null,
      targetDefaults: {
        url: config.zooidApiUrl ?? null,
        pubkey: config.secretKey ? publicKeyOf(config.secretKey) : null,
        verifyUrl: config.verify?.url ?? null,
      },
      notifier,
      readiness: {
        // A full disk shows here but keeps bosun ready: reads, agent streams and the dashboard work.
        database: async () => {
          await store.ping();
          return this.storage.status();
        },
        lease: () => (this.lease.held ? 'holder' : 'standby'),
        ...(this.observer
          ? {
              push_sync: () => {
                if (this.lease.held && !this.observer?.running) throw new Error('starting');
              },
            }
          : {}),
        ...(this.pushLeases
          ? {
              push_sync: () => {
                for (const t of this.pushLeases?.held() ?? [])
                  if (!this.targetObservers?.get(t)?.running) throw new Error(`starting (target ${t})`);
              },
              // Which targets' push work this replica does now (comma-separated; `none`).
              push_targets: () => this.pushLeases?.held().join(',') || 'none',
            }
          : {}),
      },
    });
    this.group = new ServiceGroup({
      clock: this.clock,
      logger: this.logger,
      closeTimeoutMs: config.shutdownGraceMs + 5000,
    });
    if (this.observer) this.hookObserver(this.observer, this.lease);
    // Added first so it closes last: syncs still draining in the services' closes keep signing.
    if (this.signer) this.group.add(this.signerService());
    // Closes after the observer drained its syncs (the workers service), cutting abandoned requests.
    if (this.signer) this.group.add(this.zooidService());
    this.group.add(this.leaseService());
    for (const service of this.createChores(resyncFailed)) this.group.add(service);
    this.group.add(this.httpService());
    // Closed before HTTP (reverse order): agents get `reconnect`, then the listener stops.
    this.group.add(this.streams.service());
  }

  static async create(config: ServeConfig, deps: PeerDeps = {}): Promise<Peer> {
    const logger = deps.logger ?? createLogger({ level: config.logLevel });
    const clock = deps.clock ?? systemClock;
    const storage = new StorageHealth(clock, logger.child({ component: 'storage' }));
    const opened = await openStore(config.databaseUrl, {
      ...config.postgres,
      warn: (fields, msg) => logger.warn(fields, msg),
    });
    const store = new WatchedStore(opened.store, storage);
    const notifier = new Notifier((err) => logger.error({ err }, 'change listener failed'));
    const command = new Command(store, notifier, clock);
    const query = new Query(store);
    const tokens = new TokenService(store, clock, config.adminToken);
    const metrics = createMetrics();
    if (opened.pool) watchPgPool(metrics, opened.pool);
    const replication = await opened.startReplication({
      notifier,
      logger,
      ttlMs: config.leaseTtlMs,
      registry: metrics.registry,
      replicaId: config.replicaId,
    });
    const peer = new Peer(config, logger, store, notifier, command, query, tokens, metrics, replication, {
      clock,
      random: deps.random ?? systemRandom,
      ...(deps.fetch ? { fetch: deps.fetch } : {}),
      ...(deps.onRoute ? { onRoute: deps.onRoute } : {}),
      ...(deps.fetchRelayInfo ? { fetchRelayInfo: deps.fetchRelayInfo } : {}),
      storage,
    });
    return peer;
  }

  /** Starts every service; resolves with the API's URL once it listens and push sync caught up. */
  start(): Promise<string> {
    this.started ??= (async () => {
      const adminTokenFile = await this.adminTokenToWrite();
      if (this.signer) await this.signer.ready();
      let listening!: (url: string) => void;
      const url = new Promise<string>((resolve) => {
        listening = resolve;
      });
      this.onListening = listening;
      this.running = this.group.run();
      this.running.catch((err) => this.logger.fatal({ err }, 'a bosun service failed; shutting down'));
      const address = await Promise.race([
        url,
        this.running.then(() => Promise.reject(new Error('bosun stopped'))),
      ]);
      if (this.signer) {
        this.logger.info(
          {
            zooid: this.config.zooidApiUrl ?? null,
            pubkey: this.signer.pubkey,
            signWorkers: this.config.sync.signWorkers,
          },
          'push sync enabled: zooid must list this pubkey in API_WHITELIST',
        );
      } else {
        this.logger.warn('push sync disabled: BOSUN_SECRET_KEY is not set');
      }
      // Only once bosun listens: a start that fails (port in use) leaves no token file behind.
      if (adminTokenFile) await this.bootstrapAdmin(adminTokenFile);
      const tokenFile = adminTokenFile ?? tokenFileOf(this.config.databaseUrl);
      this.logger.info(
        {
          url: address,
          dashboard: `${address}/`,
          database: shownDatabaseUrl(this.config.databaseUrl),
          ...(existsSync(tokenFile) ? { adminTokenFile: tokenFile } : {}),
        },
        'bosun listening',
      );
      return address;
    })();
    return this.started;
  }

  /** Runs until closed; rejects with the first fatal service error (after everything stopped). */
  async run(): Promise<void> {
    try {
      await this.start();
      await this.running;
    } finally {
      await this.close();
    }
  }

  /** Ordered shutdown; idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.group.close();
      } catch (err) {
        this.logger.error({ err }, 'some services did not close cleanly');
      }
      await this.replication.close();
      await this.store.close();
    })();
    return this.closing;
  }

  private onListening: (url: string) => void = () => {};

  private httpService(): Service {
    return {
      name: 'http',
      run: async (signal) => {
        // The observer has caught up by now: it was added (and so started) before this service.
        await Promise.race([this.observerReady, untilAborted(signal)]);
        if (signal.aborted) return;
        const url = await this.app.listen({ port: this.config.port, host: this.config.host });
        this.onListening(url);
        await untilAborted(signal);
      },
      close: () => this.app.close(),
    };
  }

  private observerReady: Promise<void> = Promise.resolve();

  /**
   * The observer runs while this replica holds the worker lease: it starts (catching up from the
   * persisted cursor) when a term begins, and stops when it ends. On shutdown in-flight syncs get
   * the grace period; on a lost lease they are aborted at once, since another replica is about to
   * take over. With one process (SQLite) the lease is held from start to close.
   */
  private hookObserver(observer: Observer, lease: WorkerLease): void {
    this.storage.onRecovered(() => observer.retryFailedNow());
    let stopped: Promise<void> = Promise.resolve();
    lease.onAcquired(async () => {
      await stopped;
      await observer.start();
    });
    lease.onLost((reason) => {
      // Released for rebalancing: in-flight syncs finish (the lock is held until they did).
      if (reason !== 'stopping' && reason !== 'released')
        observer.abortInFlight(`the ${lease.name} lease was lost`);
      stopped = (async () => {
        const drained = observer.stop();
        const grace = sleep(this.clock, this.config.shutdownGraceMs).then(() => 'timeout' as const);
        if ((await Promise.race([drained.then(() => 'drained' as const), grace])) === 'timeout') {
          this.logger.warn(
            { graceMs: this.config.shutdownGraceMs },
            'in-flight syncs outlived the grace period; aborting',
          );
          observer.abortInFlight();
          await drained;
        }
      })().catch((err) =>
        err instanceof FencedError
          ? this.logger.info(
              'observer stopped; its last cursor is not saved: another replica holds the lease',
            )
          : this.logger.error({ err }, 'observer did not stop cleanly'),
      );
      return stopped;
    });
  }

  /** Signing threads outlive no bosun: a leaked one would keep the process (or a test run) alive. */
  private signerService(): Service {
    return {
      name: 'signer',
      run: (signal) => untilAborted(signal),
      close: async () => {
        await Promise.all([...this.signers.values()].map((s) => s.close()));
      },
    };
  }

  /** Closes every target's zooid client (their keep-alive connections) at shutdown. */
  private zooidService(): Service {
    return {
      name: 'zooid-client',
      run: (signal) => untilAborted(signal),
      close: async () => {
        await Promise.all([...this.zooidClients].map((c) => c.close()));
      },
    };
  }

  /** One pool of signing threads per key: BOSUN_SECRET_KEY's, and each target key in use. */
  private signerFor(secretKey: string): Nip98Signer {
    let signer = this.signers.get(secretKey);
    if (!signer) {
      signer = createPooledNip98Signer(secretKey, {
        workers: this.config.sync.signWorkers,
        clock: this.clock,
        logger: this.logger.child({ component: 'signer' }),
      });
      this.signers.set(secretKey, signer);
    }
    return signer;
  }

  /** Added before the chores and HTTP, so a holder's workers have started (caught up) before HTTP listens. */
  private leaseService(): Service {
    let ready!: () => void;
    this.observerReady = new Promise((resolve) => {
      ready = resolve;
    });
    return {
      name: 'workers',
      run: async (signal) => {
        // Resolves once the first attempt is over: as holder after catch-up, else as standby.
        await this.lease.start();
        // And the first balancing pass of the push leases: the targets taken have caught up.
        await this.pushLeases?.start();
        ready();
        await untilAborted(signal);
      },
      close: async () => {
        await this.pushLeases?.stop();
        await this.lease.stop();
      },
    };
  }

  private choreService(chore: Chore, cycle: Cycle): Service {
    return {
      name: `chore:${chore.name}`,
      // Cycles start once the lease's first attempt is over, so a holder's first pass runs as holder.
      run: async (signal) => {
        await Promise.race([this.observerReady, untilAborted(signal)]);
        if (signal.aborted) return;
        // With push leased per target, every replica runs the push chores: each hands relays to
        // its own targets' observers, which skip the other targets' relays.
        const runs = () => this.lease.held || !chore.config.needsLease || this.pushChores.has(chore);
        await cycle.run((s) => (runs() ? chore.once(s) : Promise.resolve()), signal);
      },
      close: () => cycle.stop(),
    };
  }

  /** Every chore this peer runs; each brings its own config and builds its own Cycle. */
  private readonly pushChores = new Set<Chore>();

  private createChores(resyncFailed: ResyncFailed | null): Service[] {
    const chores: Chore[] = [];
    const observer = this.observer;
    const queue = this.pushQueue;
    if (queue) {
      chores.push(new RetrySweeper(this.store, queue, this.clock));
      chores.push(new DriftRepair(this.store, queue, this.clock));
      chores.push(new Resync(this.store, queue));
    }
    if (resyncFailed) chores.push(resyncFailed);
    if (this.pushLeases) for (const c of chores) this.pushChores.add(c);
    if (this.verifier) {
      const intervalMs = this.config.verify!.intervalMs;
      chores.push(
        new LiveVerify({ store: this.workerStore, verifier: this.verifier, clock: this.clock, intervalMs }),
      );
    }
    if (this.targetHealth) chores.push(this.targetHealth);
    chores.push(new CredentialExpiry(this.store, this.clock, this.command));
    chores.push(
      new ActivityRetention(this.store, this.clock, this.config.activityRetentionMs, async () =>
        observer
          ? observer.cursor
          : this.pushLeases
            ? this.slowestTargetCursor()
            : this.store.lastActivityId(),
      ),
    );
    const settings: Partial<Record<string, ChoreSettings>> = this.config.chores;
    const services: Service[] = [];
    for (const chore of chores) {
      const cycle = chore.schedule(settings[chore.name], {
        clock: this.clock,
        random: this.random,
        onError: (err, name) => this.logger.warn({ err, chore: name }, 'chore run failed'),
        onRun: ({ name, durationMs, ok }) => {
          this.metrics.choreRuns.inc({ chore: name, result: ok ? 'ok' : 'failed' });
          this.metrics.choreDuration.observe({ chore: name }, durationMs / 1000);
        },
      });
      if (!cycle) continue;
      this.chores.set(chore.name, chore);
      services.push(this.choreService(chore, cycle));
    }
    return services;
  }

  private createRouter(store: Store, requeue: (relayId: string, opts: { force: boolean }) => void): Router {
    return new Router({
      store,
      command: this.command.over(store),
      clock: this.clock,
      random: this.random,
      retry: this.config.sync.retry,
      logger: this.logger.child({ component: 'router' }),
      defaultTarget: { url: this.config.zooidApiUrl, secretKey: this.config.secretKey },
      perTargetConcurrency: this.config.sync.targetConcurrency,
      cacheTtlMs: this.config.sync.routeTtlMs,
      syncerFor: (target, onResult) => {
        const infra = this.createInfra(target, onResult, store);
        const labels = { target: target.name };
        return {
          syncRelay: async (relay, opts) => {
            const end = this.metrics.syncDuration.startTimer(labels);
            try {
              return await infra.syncRelay(relay, opts);
            } finally {
              end();
            }
          },
          removeCopy: (relayId, signal) => infra.removeCopy(relayId, signal),
          pending: (relayId) => infra.pending(relayId),
        };
      },
      requeue,
      onOutcome: (target, outcome) => {
        if (outcome.kind === 'retry') this.metrics.retriesScheduled.inc({ target });
      },
    });
  }

  private createInfra(target: Destination, onResult: (result: ZooidResult) => void, store: Store): Infra {
    const client = new ZooidClient({
      apiUrl: target.url,
      signer: this.signerFor(target.secretKey),
      clock: this.clock,
      timeoutMs: this.config.sync.timeoutMs,
    });
    this.zooidClients.add(client);
    return new Infra({
      store,
      target: target.name,
      // A Command of its own over the fenced store: sync outcomes of a lost term are refused.
      command: this.command.over(store),
      client,
      blossomS3: blossomS3FromEnv(this.config.blossomS3Env),
      clock: this.clock,
      random: this.random,
      retry: this.config.sync.retry,
      // A timed-out request may still be running in zooid for about as long again.
      inDoubtHoldMs: this.config.sync.timeoutMs,
      logger: this.logger.child({ component: 'infra', target: target.name }),
      onSync: (e) => {
        this.metrics.syncs.inc({ outcome: e.outcome, method: e.method, target: target.name });
        // zooid accepted the file: read the relay back once zooid had a moment to load it.
        if (e.outcome === 'synced') this.verifier?.synced(e.relayId);
      },
      onResult: (result) => {
        onResult(result);
        // Each target's health counts its own syncs: a zooid refusing every request is not up.
        this.targetHealth?.recordSync(target, result);
      },
    });
  }

  /**
   * Live verification: what push sync wrote is read back over NIP-11, from the workers' fenced
   * store and Command (only the lease holder checks; a lost term's records are refused).
   */
  private createVerifier(observer: PushQueue, fetchInfo: FetchRelayInfo = fetchRelayInfo): Verifier | null {
    const verify = this.config.verify;
    if (!verify || verify.intervalMs === 0) return null;
    const verifier = new Verifier({
      store: this.workerStore,
      command: this.command.over(this.workerStore),
      fetchInfo,
      clock: this.clock,
      logger: this.logger.child({ component: 'verifier' }),
      verifyUrl: verify.url,
      timeoutMs: verify.timeoutMs,
      concurrency: verify.concurrency,
      policy: { ...DEFAULT_REPAIR, graceMs: verify.graceMs },
      // A relay not live yet is read again a few times within the grace (a slow reload clears).
      recheckMs: Math.min(5000, Math.max(250, Math.floor(verify.graceMs / 3))),
      // The drift-repair path of push sync: one full PUT of the record. With push leased per
      // target, the relay's target may be another replica's: the repair goes through the log
      // (a resync activity its observer follows), not this replica's in-memory queue.
      repair: (relayId) => {
        this.metrics.liveRepairs.inc();
        if (!this.pushLeases) return observer.enqueue(relayId, { force: true });
        this.command
          .resyncRelay(VERIFIER, relayId)
          .catch((err) =>
            this.logger.warn(
              { err, relayId },
              'live repair could not be recorded; the next check tries again',
            ),
          );
      },
      onCheck: ({ durationMs }) => this.metrics.liveCheckSeconds.observe(durationMs / 1000),
    });
    // Only the lease holder checks: a term starts it, its end stops it.
    this.lease.onAcquired(() => verifier.start());
    this.lease.onLost(() => verifier.stop());
    return verifier;
  }

  /**
   * The observer of a lease: the worker lease's (every relay), or one target's (`target`: only the
   * relays whose push work is that target's, see ownsRelay; its own cursor `observer:<target>`).
   */
  private createObserver(router: Router, store: Store, lease: WorkerLease, target?: string): Observer {
    const m = this.metrics;
    const label = { target: target ?? ALL_TARGETS };
    return new Observer({
      store,
      notifier: this.notifier,
      clock: this.clock,
      logger: this.logger.child({ component: 'observer', ...(target ? { target } : {}) }),
      concurrency: this.config.sync.concurrency,
      ...(target ? { cursorName: `observer:${target}` } : {}),
      sync: async (relayId, signal, { force }) => {
        // Checked against the term's deadline: a replica frozen past it starts no sync on waking.
        if (!lease.held) throw new Error(`this replica does not hold the ${lease.name} lease`);
        // Its duration and retries are counted per target by the router (createRouter).
        if (target === undefined) return router.syncRelay(relayId, { signal, force });
        // Read for the ownership check; the sync reads it again under the relay's lock, where a
        // request another target had in flight has settled and been recorded (syncOwned).
        const relay = await store.getRelay(relayId);
        if (!relay) return { kind: 'skipped', reason: 'missing' };
        if (!(await this.ownsRelay(router, target, relay)))
          return { kind: 'skipped', reason: 'other_target' };
        return this.syncOwned(router, lease, relayId, { signal, force });
      },
      onSyncStart: (ms) => m.commitToSyncStart.observe(ms / 1000),
      // One series per observer: a target's is shown while this replica holds it (the holder's
      // alone, so summing over replicas counts each target once); see createPushLeases.
      onQueueDepth: (d) => {
        if (lease.held) m.queueDepth.set(label, d);
      },
      onCursor: (c) => {
        if (lease.held) m.observerCursor.set(label, c);
      },
    });
  }

  /**
   * One sync of a relay that is `target`'s push work, under the relay's lock (issue 17). Each
   * target's observer keeps its own relays' syncs one at a time, but a relay's owner changes when
   * its fleet changes target, and the old target's request may still be in flight then: the new
   * target's move would read where the relay lives before that request landed (a create there
   * left as a stray copy; a delete landing after the relay came back, leaving it on no target or
   * the wrong one). Prevention, not repair: no zooid gets a request for a relay while another
   * target's may still land, so every move reads a record that tells the truth. The lock is kept
   * until a request whose answer was lost cannot land any more (Router.pending). A sync that
   * finds the lock taken is `busy`: its observer keeps the activities that asked for it (the
   * cursor waits, so a crash loses nothing) and tries again soon. One that took the lock after its relay changed owner does what the record says
   * (Router.syncRelay reads the route afresh), under the lock all the same.
   */
  private async syncOwned(
    router: Router,
    lease: WorkerLease,
    relayId: string,
    opts: { signal: AbortSignal; force: boolean },
  ): Promise<SyncOutcome> {
    const unlock = await lease.relayLocks!.tryLock(relayId);
    if (!unlock) {
      this.logger.debug(
        { relayId, lease: lease.name },
        'relay busy: another target may still land a request',
      );
      return { kind: 'skipped', reason: 'busy', retryAt: this.clock.now() + BUSY_RETRY_MS };
    }
    try {
      return await router.syncRelay(relayId, opts);
    } finally {
      const open = router.pending(relayId);
      if (open) void open.then(unlock);
      else await unlock();
    }
  }

  /** Every push target's name: `default` (its relays fail clearly without ZOOID_API_URL) and the table's. */
  private async pushTargets(): Promise<string[]> {
    return [DEFAULT_TARGET, ...(await this.store.listTargets()).map((t) => t.name)];
  }

  /**
   * Whether a relay's sync is the push work of `target`: the target its sync goes to (Router.ownerOf);
   * a relay of no target (gone, pull-only) or of a target that does not exist is `default`'s, so
   * exactly one observer syncs (or records the failure of) every relay.
   */
  private async ownsRelay(router: Router, target: string, relay: Relay): Promise<boolean> {
    const owner = await router.ownerOf(relay);
    if (owner === target) return true;
    if (target !== DEFAULT_TARGET) return false;
    return owner === null || (owner !== DEFAULT_TARGET && (await this.store.getTarget(owner)) === null);
  }

  /** Activity retention keeps what the slowest target's observer has not passed yet. */
  private async slowestTargetCursor(): Promise<number> {
    const legacy = await this.store.getCursor('observer');
    let min = Number.POSITIVE_INFINITY;
    for (const t of await this.pushTargets()) {
      min = Math.min(min, (await this.store.getCursor(`observer:${t}`)) || legacy);
    }
    return min;
  }

  /**
   * Push work leased per target: each target's lease gets its router and observer (fenced by that
   * lease's epoch) when first made; `bosun_target_lease_held{target}` shows which this replica holds.
   */
  private createPushLeases(replication: Replication): PushLeases {
    const held = new Gauge({
      name: 'bosun_target_lease_held',
      help: "Whether this replica holds the target's push lease and pushes its relays (1) or not (0)",
      labelNames: ['target'] as const,
      registers: [this.metrics.registry],
    });
    watchTargetLoad(this.metrics, {
      load: () => [...this.targetRouters].flatMap(([t, r]) => r.load().filter((l) => l.target === t)),
    });
    return replication.pushLeases!({
      targets: () => this.pushTargets(),
      onChange: (target, isHeld) => held.set({ target }, isHeld ? 1 : 0),
      onLease: (target, lease) => {
        held.set({ target }, 0);
        const store = new FencedStore(this.store, () => lease.fence);
        const router = this.createRouter(store, (id, o) => observer.enqueue(id, o));
        const observer = this.createObserver(router, store, lease, target);
        this.targetRouters.set(target, router);
        this.targetObservers!.add(target, observer);
        // First term of a target's observer after the upgrade from one worker lease: it starts
        // where the single observer left off (everything before was pushed to every target).
        lease.onAcquired(async () => {
          const name = `observer:${target}`;
          if ((await store.getCursor(name)) !== 0) return;
          const legacy = await this.store.getCursor('observer');
          if (legacy > 0) await store.setCursor(name, legacy);
        });
        this.hookObserver(observer, lease);
        // Another replica shows the target's observer from now on.
        lease.onLost(() => {
          this.metrics.queueDepth.remove({ target });
          this.metrics.observerCursor.remove({ target });
        });
      },
    });
  }

  /**
   * A fresh install has no way to sign in. Without BOSUN_ADMIN_TOKEN and any admin token, bosun
   * creates one and writes it (mode 0600) to this database's own file, never to the log. A file
   * already there is never overwritten: it may hold the only admin token of another database.
   * Returns the file to write once bosun listens, or null when an admin exists.
   */
  private async adminTokenToWrite(): Promise<string | null> {
    if (await this.tokens.hasAdmin()) return null;
    const file = tokenFileOf(this.config.databaseUrl);
    if (existsSync(file)) throw this.tokenFileTaken(file);
    return file;
  }

  private tokenFileTaken(file: string): StartupError {
    const db = shownDatabaseUrl(this.config.databaseUrl);
    return new StartupError(
      `the database ${db} has no admin token, and ${file} already exists (it may belong to another ` +
        `database): move it away, or create an admin token with \`bosun token create --role admin --database-url ${db}\``,
    );
  }

  private async bootstrapAdmin(file: string): Promise<void> {
    makeDirs(dirname(file));
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o600);
    } catch (err) {
      throw (err as NodeJS.ErrnoException).code === 'EEXIST' ? this.tokenFileTaken(file) : err;
    }
    try {
      const { token } = await this.tokens.create({ role: 'admin', name: 'generated-admin' });
      writeSync(fd, `${token}\n`);
    } catch (err) {
      closeSync(fd);
      unlinkSync(file);
      throw err;
    }
    closeSync(fd);
    this.logger.warn({ file }, 'no admin token existed: generated one and wrote it to this file (mode 0600)');
  }
}

/** A start-up failure the operator can act on: its message alone is the whole story (no stack). */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
