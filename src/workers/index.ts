import { Worker, NativeConnection, bundleWorkflowCode, Runtime, DefaultLogger, LogLevel } from '@temporalio/worker';
import type { Logger } from 'pino';
import type { Db } from '../db';
import type { HostEngine } from '../engine/host';
import { createCatalogActivities } from '../activities/catalog';
import { createHostActivities, HostActivities, withHeartbeats } from '../activities/host';
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
  const workers: Worker[] = [];
  if (o.control) {
    workers.push(
      await Worker.create({
        connection,
        namespace: o.namespace,
        taskQueue: o.controlTaskQueue,
        workflowBundle: await workflowBundle(),
        activities: createCatalogActivities({ db: o.db, secretKey: o.secretKey, faults: o.faults }),
      }),
    );
  }
  let hostActivities: HostActivities | undefined;
  if (o.host) {
    hostActivities = createHostActivities({ engine: o.engine, hostId: o.hostId, secretKey: o.secretKey, faults: o.faults, logger: o.logger });
    // A fork reports the bytes written into the child's data dir as it goes.
    const progress = async (name: string, args: unknown[]) => {
      const childBranchId = (args[0] as { childBranchId?: string } | undefined)?.childBranchId;
      if ((name === 'forkBranchData' || name === 'provisionBranchCompute') && childBranchId) return { bytesDone: await o.engine.branches.bytes(childBranchId) };
      return undefined;
    };
    workers.push(
      await Worker.create({
        connection,
        namespace: o.namespace,
        taskQueue: hostTaskQueue(o.hostId),
        activities: withHeartbeats(hostActivities, progress),
      }),
    );
  }
  const runs = workers.map((w) =>
    w.run().catch((err) => {
      o.logger.error({ err }, 'worker stopped with an error');
    }),
  );
  return {
    hostActivities,
    state: () => Object.fromEntries(workers.map((w) => [w.options.taskQueue, w.getState()])),
    async shutdown() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await Promise.all(runs);
      await connection.close();
    },
  };
}
