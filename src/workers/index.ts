import { Worker, NativeConnection, bundleWorkflowCode, Runtime, DefaultLogger, LogLevel } from '@temporalio/worker';
import type { Logger } from 'pino';
import type { Db } from '../db';
import type { HostEngine } from '../engine/host';
import { createCatalogActivities } from '../activities/catalog';
import { createHostActivities, HostActivities, withHeartbeats } from '../activities/host';
import { createWebhookActivities } from '../activities/webhooks';
import { hostTaskQueue } from '../domain/queues';

let bundle: Promise<{ code: string }> | undefined;
let runtimeInstalled = false;

/** Bundling takes seconds; do it once per process. */
function workflowBundle() {
  bundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: new DefaultLogger('WARN') });
  return bundle;
}

export interface WorkerOptions {
  temporalAddress: string;
  namespace: string;
  controlTaskQueue: string;
  hostId: string;
  db: Db;
  engine: HostEngine;
  secretKey: Buffer;
  faults: readonly string[];
  logger: Logger;
  /** Webhook delivery (control worker): private targets allowed, request timeout. */
  webhooks: { allowPrivate: boolean; timeoutMs: number };
  /** Which workers this process runs. */
  control: boolean;
  host: boolean;
}

export interface RunningWorkers {
  shutdown(): Promise<void>;
  state(): Record<string, string>;
  /** The host worker's activities, for in-process callers on the same host (wake-on-connect). */
  hostActivities?: HostActivities;
}

/**
 * The control-plane worker (workflows + catalog activities) and the host worker (engine
 * activities on host-<id>). One machine runs both; a fleet runs one host worker per machine.
 */
export async function startWorkers(o: WorkerOptions): Promise<RunningWorkers> {
  if (!runtimeInstalled) {
    runtimeInstalled = true;
    const levels: Record<string, LogLevel> = { trace: 'TRACE', debug: 'DEBUG', info: 'INFO', warn: 'WARN', error: 'ERROR' };
    Runtime.install({
      logger: new DefaultLogger(levels[o.logger.level] ?? 'WARN', (entry) => {
        const level = entry.level === 'TRACE' ? 'trace' : (entry.level.toLowerCase() as 'debug' | 'info' | 'warn' | 'error');
        o.logger[level]({ temporal: true, ...entry.meta }, entry.message);
      }),
    });
  }
  // The runtime must exist before the first native connection.
  const connection = await NativeConnection.connect({ address: o.temporalAddress });
  const factories: (() => Promise<Worker>)[] = [];
  if (o.control) {
    const activities = {
      ...createCatalogActivities({ db: o.db, secretKey: o.secretKey, faults: o.faults }),
      ...createWebhookActivities({ db: o.db, secretKey: o.secretKey, ...o.webhooks }),
    };
    const workflowCode = await workflowBundle();
    factories.push(() => Worker.create({ connection, namespace: o.namespace, taskQueue: o.controlTaskQueue, workflowBundle: workflowCode, activities }));
  }
  let hostActivities: HostActivities | undefined;
  if (o.host) {
    hostActivities = createHostActivities({ engine: o.engine, hostId: o.hostId, secretKey: o.secretKey, faults: o.faults, logger: o.logger });
    // A fork reports the bytes written into the child's data dir as it goes; an import the bytes piped.
    const progress = async (name: string, args: unknown[]) => {
      const childBranchId = (args[0] as { childBranchId?: string } | undefined)?.childBranchId;
      if ((name === 'forkBranchData' || name === 'provisionBranchCompute') && childBranchId) return { bytesDone: await o.engine.branches.bytes(childBranchId) };
      const replicaId = (args[0] as { replicaId?: string } | undefined)?.replicaId;
      if (name === 'provisionReplicaCompute' && replicaId) return { bytesDone: await o.engine.branches.bytes(replicaId) };
      // An import reports what went through the pipe and the object being loaded.
      const importBranchId = (args[0] as { spec?: { branchId?: string } } | undefined)?.spec?.branchId;
      if (name === 'loadSourceDump' && importBranchId) return o.engine.imports.progress(importBranchId);
      return undefined;
    };
    const activities = withHeartbeats(hostActivities, progress);
    factories.push(() => Worker.create({ connection, namespace: o.namespace, taskQueue: hostTaskQueue(o.hostId), activities }));
  }
  const workers: Worker[] = await Promise.all(factories.map((create) => create()));
  // Supervised: a worker whose run() ends on its own (e.g. a fatal error after a long Temporal
  // outage) is created again, with backoff, until shutdown.
  let stopping = false;
  let wake: () => void = () => undefined;
  const stopped = new Promise<void>((r) => (wake = r));
  const pause = (ms: number) => Promise.race([stopped, new Promise<void>((r) => setTimeout(r, ms).unref())]);
  const supervise = async (i: number) => {
    for (let attempt = 0; ; ) {
      const taskQueue = workers[i].options.taskQueue;
      const started = Date.now();
      try {
        await workers[i].run();
        if (stopping) return;
        o.logger.error({ taskQueue }, 'worker stopped on its own; creating it again');
      } catch (err) {
        if (stopping) return;
        o.logger.error({ err, taskQueue }, 'worker stopped with an error; creating it again');
      }
      if (Date.now() - started > 60_000) attempt = 0;
      for (;;) {
        await pause(Math.min(500 * 2 ** attempt++, 10_000));
        if (stopping) return;
        try {
          workers[i] = await factories[i]();
          if (stopping) return; // created but never run: nothing to shut down
          break;
        } catch (err) {
          o.logger.warn({ err: (err as Error).message, taskQueue }, 'could not create the worker yet');
        }
      }
    }
  };
  const runs = workers.map((_, i) => supervise(i));
  return {
    hostActivities,
    state: () => Object.fromEntries(workers.map((w) => [w.options.taskQueue, w.getState()])),
    async shutdown() {
      stopping = true;
      wake();
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await Promise.all(runs);
      await connection.close();
    },
  };
}
