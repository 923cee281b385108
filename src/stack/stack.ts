import http from 'node:http';
import path from 'node:path';
import fs from 'node:fs';
import { setMaxListeners } from 'node:events';
import { ComputePools } from '../api/executor';
import { TtlCache } from '../api/ttlCache';
import { TransferMeter } from './transferMeter';
import pino, { Logger } from 'pino';
import { sql } from 'kysely';
import { Pool } from 'pg';
import { RateLimits } from '../api/rateLimit';
import type { Client, Connection } from '@temporalio/client';
import { Config, ConfigError } from '../config';
import { createDb, Db, migrateToLatest } from '../db';
import { bootstrapAccess } from '../db/apiKeys';
import { resolveOsUser } from '../engine/exec';
import { SYSTEM_ROLE } from '../engine/cluster';
import { PgInstalls } from '../engine/pgInstalls';
import { HostEngine } from '../engine/host';
import { HostLayout } from '../engine/layout';
import { canConnect, isPortFree } from '../engine/ports';
import { createApp } from '../api/app';
import type { ApiDeps } from '../api/deps';
import { ProxyServer } from '../proxy/server';
import { loadOrCreateTls } from '../proxy/tls';
import { connectClient, ensureNamespace } from '../temporal/connect';
import { setAvailability } from '../operations/client';
import { startWorkers, RunningWorkers } from '../workers';
import { deleteSchedules, ensureSchedules, lampionSchedules } from '../workers/schedules';
import { CgroupLimiter } from '../engine/cgroups';
import { loadSecretKey } from './secretKey';
import { startControlDb, ControlDb } from './controlDb';
import { startTemporalServer, stopLeftoverServer, TemporalServer } from './temporalServer';
import { createEndpointResolver } from './endpointResolver';
import { createCatalogActivities } from '../activities/catalog';
import { startComputeRestart, superviseComputes } from '../workers/supervisor';
import { superviseOperations } from '../workers/operationReconciler';
import { superviseWebhookDeliveries } from '../workers/webhookDispatcher';
import type { DeliveryStarter } from '../operations/webhooks';
import { computeDataId } from '../domain/computeData';
import { mountCowVolume, unmountCowVolume } from './cowVolume';
import type { CowVolume } from '../engine/cowVolume';

export interface Roles {
  api: boolean;
  worker: boolean;
  proxy: boolean;
}

export const ALL_ROLES: Roles = { api: true, worker: true, proxy: true };

/** dist/pg, where scripts/build-guard.sh puts <major>/lampion_guard.so. */
function defaultGuardDir(): string | undefined {
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return path.join(dir, 'dist', 'pg');
    dir = path.dirname(dir);
  }
  return undefined;
}

/**
 * The major's guard, when built. Computes load it as the compute user, who may not be able to
 * read the repository (a clone under a 0700 home); the data dir is reachable by that user by
 * construction, so it is copied there.
 */
function installGuardLibrary(guardDir: string | undefined, major: number, dataDir: string): string | undefined {
  const source = guardDir && path.join(guardDir, String(major), 'lampion_guard.so');
  if (!source || !fs.existsSync(source)) return undefined;
  const dir = path.join(dataDir, 'lib', String(major));
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  fs.chmodSync(path.dirname(dir), 0o755);
  const target = path.join(dir, 'lampion_guard.so');
  const stale = !fs.existsSync(target) || fs.statSync(target).mtimeMs < fs.statSync(source).mtimeMs;
  if (stale) {
    fs.copyFileSync(source, `${target}.tmp`);
    fs.chmodSync(`${target}.tmp`, 0o644);
    fs.renameSync(`${target}.tmp`, target);
  }
  return target;
}

/** Below /health's own bound per probe (1.3 s), so a down Temporal reads as its gRPC error. */
const PROBE_DEADLINE_MS = 1000;

async function assertPortFree(port: number, variable: string, host: string): Promise<void> {
  if (port !== 0 && !(await isPortFree(port, host))) {
    throw new ConfigError(`port ${port} is already in use (${variable}); set ${variable} to a free port`);
  }
}

/**
 * Everything a Lampion process runs, started in dependency order and stopped in reverse:
 * embedded control DB and Temporal (unless external ones are configured), catalog migrations,
 * workers, proxy, API.
 */
export class Stack {
  readonly logger: Logger;
  db!: Db;
  engine!: HostEngine;
  temporal!: Client;
  temporalAddress!: string;
  firstOwnerKey?: string;
  private controlDb?: ControlDb;
  private temporalServer?: TemporalServer;
  private connection?: Connection;
  private workers?: RunningWorkers;
  private supervisor?: { stop(): void };
  private operationReconciler?: { stop(): void };
  private webhookDispatcher?: { stop(): void };
  proxy?: ProxyServer;
  private transferMeter?: TransferMeter;
  private server?: http.Server;
  private cowVolume?: CowVolume;
  private stopped = false;
  /** The rate limiter's connections (its store is the catalog's rate_limits table). */
  private ratePool?: Pool;
  /** The SQL executor's connections to computes; closed in stop() before the computes stop. */
  private readonly computePools: ComputePools;
  /** Aborted first in stop(): cancels result polls the API left running (see ApiDeps.stopping). */
  private readonly stopping = (() => {
    const c = new AbortController();
    // One listener per result poll in flight: many at once is normal, not a leak.
    setMaxListeners(0, c.signal);
    return c;
  })();

  private constructor(
    readonly config: Config,
    readonly roles: Roles,
    logger?: Logger,
  ) {
    this.logger = logger ?? pino({ level: config.logLevel, base: { host: config.hostId } });
    this.computePools = new ComputePools({ size: config.sql.poolSize, idleMs: 10_000, logger: this.logger.child({ component: 'sql' }) });
  }

  static async start(config: Config, roles: Roles = ALL_ROLES, logger?: Logger): Promise<Stack> {
    const stack = new Stack(config, roles, logger);
    try {
      await stack.boot();
    } catch (err) {
      await stack.stop().catch(() => undefined);
      throw err;
    }
    return stack;
  }

  get apiPort(): number {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : this.config.apiPort;
  }

  get proxyPort(): number {
    return this.proxy?.port ?? this.config.proxyPort;
  }

  get temporalUiUrl(): string | undefined {
    return this.temporalServer?.uiUrl;
  }

  private async boot(): Promise<void> {
    const c = this.config;
    const listenHost = c.listenHost;
    if (this.roles.api) await assertPortFree(c.apiPort, 'LAMPION_API_PORT', listenHost);
    if (this.roles.proxy) await assertPortFree(c.proxyPort, 'LAMPION_PROXY_PORT', listenHost);
    fs.mkdirSync(c.dataDir, { recursive: true });
    // Before anything touches branch data: it may live on a btrfs image mounted here.
    if (this.roles.worker) this.cowVolume = await mountCowVolume(c, this.logger);
    const guardDir = c.guardDir ?? defaultGuardDir();
    const user = resolveOsUser(c.pgOsUser);
    const pgs = new PgInstalls(
      c.pgInstalls.map(({ major, binDir }) => ({ major, binDir, user, guardLibrary: installGuardLibrary(guardDir, major, c.dataDir) })),
    );
    const secretKey = loadSecretKey(c);

    if (!c.databaseUrl) {
      const running = fs.existsSync(path.join(c.dataDir, 'control', 'pgdata', 'postmaster.pid'));
      if (!running) await assertPortFree(c.controlDbPort, 'LAMPION_CONTROL_DB_PORT', '127.0.0.1');
      this.controlDb = await startControlDb(pgs, c.dataDir, c.controlDbPort);
    }
    this.db = createDb(c.databaseUrl ?? this.controlDb!.url);
    if (this.roles.api) {
      this.ratePool = new Pool({ connectionString: c.databaseUrl ?? this.controlDb!.url, max: 4 });
      this.ratePool.on('error', () => undefined);
    }
    await migrateToLatest(this.db);

    if (!c.temporalAddress) {
      if (!c.temporalBin) throw new ConfigError('LAMPION_TEMPORAL_BIN is not set and TEMPORAL_ADDRESS is empty: run through `npm start`, which installs the Temporal CLI');
      // A server an earlier run of this data dir left behind (killed before it could stop it)
      // is stopped first: its port is not "in use" by anyone else, and it must not share the db.
      const temporalLog = this.logger.child({ component: 'temporal' });
      await stopLeftoverServer(c.dataDir, temporalLog);
      await assertPortFree(c.temporalPort, 'LAMPION_TEMPORAL_PORT', '127.0.0.1');
      await assertPortFree(c.temporalUiPort, 'LAMPION_TEMPORAL_UI_PORT', '127.0.0.1');
      this.temporalServer = await startTemporalServer({
        bin: c.temporalBin,
        port: c.temporalPort,
        uiPort: c.temporalUiPort,
        dataDir: c.dataDir,
        namespace: c.temporalNamespace,
        logger: temporalLog,
      });
    }
    this.temporalAddress = c.temporalAddress ?? this.temporalServer!.address;
    const { connection, client } = await connectClient(this.temporalAddress, c.temporalNamespace);
    this.connection = connection;
    this.temporal = client;
    const embedded = this.temporalServer;
    if (embedded) setAvailability(client, () => (embedded.up() ? undefined : 'embedded Temporal is restarting'));
    await ensureNamespace(connection, c.temporalNamespace);

    this.engine = new HostEngine(new HostLayout(c.dataDir), pgs, c.storageDriver, this.roles.worker ? await CgroupLimiter.create() : undefined, {
      min: c.computePortMin,
      max: c.computePortMax,
    }, { spareClusters: c.spareClusters, incrementalChainMax: c.backups.incrementalChainMax, onBackgroundError: (err) => this.logger.warn({ err }, 'could not make a spare cluster') });
    if (this.roles.worker) {
      if (!this.engine.limiter.enforced) this.logger.warn({ reason: this.engine.limiter.reason }, 'compute CPU and memory limits are not enforced on this host');
      await this.engine.prepare();
      await this.reconcileEndpoints();
      this.workers = await startWorkers({
        temporalAddress: this.temporalAddress,
        namespace: c.temporalNamespace,
        controlTaskQueue: c.controlTaskQueue,
        hostId: c.hostId,
        db: this.db,
        engine: this.engine,
        secretKey,
        faults: c.faultInjection,
        logger: this.logger.child({ component: 'worker' }),
        webhooks: { allowPrivate: c.webhooks.allowPrivate, timeoutMs: c.webhooks.timeoutMs },
        control: true,
        host: true,
      });
      await ensureSchedules(this.temporal, c.controlTaskQueue, this.schedules, this.logger, c.hostTimeouts);
      this.supervisor = superviseComputes({
        engine: this.engine,
        temporal: this.temporal,
        taskQueue: c.controlTaskQueue,
        hostId: c.hostId,
        hostTimeouts: c.hostTimeouts,
        logger: this.logger.child({ component: 'supervisor' }),
      });
      // Operations whose workflow never started (a crash between the row and the start) or
      // ended without recording its outcome are closed: at boot, then every 10 s.
      this.operationReconciler = superviseOperations({ db: this.db, temporal: this.temporal, logger: this.logger.child({ component: 'operations' }) });
      this.webhookDispatcher = superviseWebhookDeliveries({ db: this.db, starter: this.deliveryStarter, logger: this.logger.child({ component: 'webhooks' }) });
    }

    if (this.roles.proxy) {
      const tls = await loadOrCreateTls(path.join(c.dataDir, 'tls'), c.tlsCertFile, c.tlsKeyFile);
      this.transferMeter = new TransferMeter(this.db, this.logger.child({ component: 'usage' }));
      this.transferMeter.start();
      const meter = this.transferMeter;
      this.proxy = new ProxyServer({
        onTransfer: (endpointId, bytes) => meter.add(endpointId, bytes),
        port: c.proxyPort,
        host: listenHost,
        tls,
        requireTls: c.proxyRequireTls,
        reservedRoles: [SYSTEM_ROLE],
        logger: this.logger.child({ component: 'proxy' }),
        ...createEndpointResolver({
          db: this.db,
          temporal: this.temporal,
          taskQueue: c.controlTaskQueue,
          logger: this.logger.child({ component: 'proxy' }),
          hostTimeouts: c.hostTimeouts,
          stopping: this.stopping.signal,
          localHost: this.workers?.hostActivities && {
            hostId: c.hostId,
            startEndpoint: this.workers.hostActivities.startEndpoint,
            setEndpointState: createCatalogActivities({ db: this.db, secretKey }).setEndpointState,
            socketFile: (endpointId, port) => this.engine.layout.socketFile(endpointId, port),
            computeDied: (branchId) => this.engine.computeNeedsStart(branchId),
            recordRestart: async (ep) => {
              await startComputeRestart({ temporal: this.temporal, taskQueue: c.controlTaskQueue, hostId: c.hostId, hostTimeouts: c.hostTimeouts }, ep);
            },
          },
        }),
      });
      await this.proxy.start();
    }

    if (this.roles.api) {
      const deps: ApiDeps = {
        config: c,
        db: this.db,
        secretKey,
        temporal: this.temporal,
        logger: this.logger.child({ component: 'api' }),
        deliveries: this.deliveryStarter,
        rateLimits: new RateLimits((plan) => c.rateLimits[plan as keyof typeof c.rateLimits] ?? c.rateLimits.free, this.ratePool),
        proxyPort: () => this.proxyPort,
        probes: this.probes(),
        stopping: this.stopping.signal,
        computePools: this.computePools,
        ...(this.roles.worker && { localComputeSocket: { hostId: c.hostId, socketDir: (endpointId: string) => this.engine.layout.socketDir(endpointId) } }),
        caches: { apiKeys: new TtlCache(c.apiCacheMs), runningEndpoints: new TtlCache(c.apiCacheMs) },
      };
      const app = createApp(deps);
      this.server = http.createServer(app.callback());
      await new Promise<void>((resolve, reject) => {
        this.server!.once('error', reject);
        this.server!.listen(c.apiPort, listenHost, () => resolve());
      });
    }
    // Last, so a start that fails earlier cannot issue a first owner key nobody ever sees.
    this.firstOwnerKey = (await bootstrapAccess(this.db, { bootstrapKey: c.bootstrapApiKey, ttlDays: c.apiKeyTtlDays, plan: c.defaultOrgPlan, ownerEmail: c.ownerEmail })).firstOwnerKey;
  }

  /** How webhook deliveries' workflows are started (the API's events, the dispatcher's outbox). */
  get deliveryStarter(): DeliveryStarter {
    const w = this.config.webhooks;
    return {
      temporal: this.temporal,
      taskQueue: this.config.controlTaskQueue,
      retry: { initialSeconds: w.retryInitialSeconds, maxSeconds: w.retryMaxSeconds, hours: w.retryHours },
      timeoutMs: w.timeoutMs,
    };
  }

  get schedules() {
    return lampionSchedules(this.config.controlTaskQueue, this.config.sweeps, this.config.backups);
  }

  /** For throwaway stacks (tests, benchmarks) on a shared Temporal; production keeps them. */
  async deleteSchedules(): Promise<void> {
    await deleteSchedules(this.temporal, this.schedules);
  }

  private probes(): ApiDeps['probes'] {
    const c = this.config;
    return {
      control_db: async () => {
        await sql`select 1`.execute(this.db);
        return { status: 'ok', detail: this.controlDb ? 'embedded' : 'external' };
      },
      // A deadline, or the client retries an unreachable Temporal for about 20 s.
      temporal: async () => {
        if (this.temporalServer && !this.temporalServer.up()) return { status: 'down', detail: 'embedded Temporal is restarting' };
        await this.connection!.withDeadline(Date.now() + PROBE_DEADLINE_MS, () => this.connection!.workflowService.getSystemInfo({}));
        return { status: 'ok', detail: this.temporalServer ? `${this.temporalAddress} (embedded)` : this.temporalAddress };
      },
      worker: async () => {
        const res = await this.connection!.withDeadline(Date.now() + PROBE_DEADLINE_MS, () =>
          this.connection!.workflowService.describeTaskQueue({
            namespace: c.temporalNamespace,
            taskQueue: { name: c.controlTaskQueue },
            taskQueueType: 1, // WORKFLOW
          }),
        );
        const pollers = res.pollers?.length ?? 0;
        return pollers > 0 ? { status: 'ok', detail: `${pollers} poller(s) on ${c.controlTaskQueue}` } : { status: 'down', detail: `no worker polls ${c.controlTaskQueue}` };
      },
      ...(this.roles.worker
        ? {
            storage: async () => ({ status: 'ok' as const, detail: `driver ${await this.engine.driver()}` }),
            compute_limits: async () => ({
              status: 'ok' as const,
              detail: this.engine.limiter.enforced ? `enforced (cgroup ${this.engine.limiter.version})` : `not enforced: ${this.engine.limiter.reason}`,
            }),
          }
        : {}),
      proxy: async () => {
        const up = this.proxy ? this.proxy.listening : await canConnect(c.proxyPort);
        return up ? { status: 'ok', detail: `port ${this.proxyPort}` } : { status: 'down', detail: `nothing listens on ${this.proxyPort}` };
      },
    };
  }

  /**
   * After a restart, bring back every compute this host should be running: only endpoints whose
   * branch and project are ready. A compute of a branch being created, reset or deleted belongs
   * to that operation's workflow, which resumes on its own (starting one here raced a reset for
   * its port and served a branch being deleted).
   */
  private async reconcileEndpoints(): Promise<void> {
    const rows = await this.db
      .selectFrom('endpoints')
      .innerJoin('branches', 'branches.id', 'endpoints.branch_id')
      .innerJoin('projects', 'projects.id', 'endpoints.project_id')
      .select(['endpoints.id', 'endpoints.project_id', 'endpoints.branch_id', 'endpoints.role', 'endpoints.port', 'endpoints.compute_cu', 'endpoints.status', 'branches.status as branch_status', 'projects.status as project_status'])
      .where('endpoints.host_id', '=', this.config.hostId)
      .execute();
    const settled = rows.filter((r) => r.branch_status === 'ready' && r.project_status === 'ready');
    // Data dirs made before the host kept its own port record. Settled endpoints only: adopting
    // the port of a branch being deleted (or a create being undone) whose workflow had already
    // removed the endpoint's files recreated them, and the resumed workflow, past that step,
    // left an orphan endpoint dir holding the port (found by test/crash.e2e.test.ts).
    for (const r of settled) if (r.port !== null) await this.engine.ports.adopt(r.id, r.port);
    await Promise.all(
      settled
        .filter((r) => r.status === 'running' && r.port !== null)
        .map(async (r) => {
          try {
            await this.engine.startEndpoint({ endpointId: r.id, branchId: computeDataId(r), port: r.port!, computeCu: r.compute_cu, projectId: r.project_id });
          } catch (err) {
            this.logger.error({ err, endpoint: r.id }, 'could not restart endpoint');
          }
        }),
    );
  }

  /** Stops this host's computes without changing their desired state: a restart brings them back. */
  private async stopHostComputes(): Promise<void> {
    const rows = await this.db.selectFrom('endpoints').select(['id', 'branch_id', 'role']).where('host_id', '=', this.config.hostId).execute();
    await Promise.all(
      rows.map((r) =>
        this.engine.stopEndpoint({ branchId: computeDataId(r), endpointId: r.id }).catch((err) => this.logger.error({ err, endpoint: r.id }, 'could not stop endpoint')),
      ),
    );
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.stopping.abort();
    this.supervisor?.stop();
    this.operationReconciler?.stop();
    this.webhookDispatcher?.stop();
    if (this.server) {
      this.server.closeAllConnections?.();
      await new Promise((r) => this.server!.close(r));
    }
    // Before the computes stop: their pooled sessions end cleanly, not from under the pool.
    await this.computePools.close();
    await this.proxy?.stop().catch(() => undefined);
    await this.transferMeter?.stop().catch(() => undefined);
    await this.workers?.shutdown().catch(() => undefined);
    if (this.roles.worker && this.db && this.engine) await this.stopHostComputes().catch(() => undefined);
    await this.engine?.spares.close();
    await this.db?.destroy().catch(() => undefined);
    await this.ratePool?.end().catch(() => undefined);
    await this.temporalServer?.stop();
    await this.controlDb?.stop();
    // Last: a call still in flight (an operation's result() long poll) retries when Temporal goes
    // away, and a retry that fires on a closed channel throws from a timer (uncaught).
    await this.connection?.close().catch(() => undefined);
    await unmountCowVolume(this.cowVolume, this.logger);
  }
}
