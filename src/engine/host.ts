import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { HostLayout } from './layout';
import { ensureOwnedDir, exists } from './fs';
import { detectDriver, createDataDir, removeDataDir, StorageDriver } from './storage';
import {
  PgInstall,
  initCluster,
  writeRuntimeConf,
  startCluster,
  stopCluster,
  isRunning,
  withSystemClient,
} from './cluster';

export interface EndpointSpec {
  endpointId: string;
  branchId: string;
  port: number;
}

/** The name users log in with; powerful inside its databases but not a superuser. */
export const USER_ROLE = 'cloud_admin';

/**
 * One machine's Postgres work: branch data dirs and the endpoints (postgres processes) serving
 * them. Usable without Temporal; activities are thin wrappers around it.
 */
export class HostEngine {
  constructor(
    readonly layout: HostLayout,
    readonly pg: PgInstall,
    readonly driverOverride?: StorageDriver,
  ) {}

  async prepare(): Promise<void> {
    await fsp.mkdir(this.layout.dataDir, { recursive: true });
    for (const dir of [this.layout.branchesDir, this.layout.endpointsDir, this.layout.walDir]) {
      await ensureOwnedDir(dir, this.pg.user, 0o711);
    }
  }

  driver(): Promise<StorageDriver> {
    return detectDriver(this.layout.branchesDir, this.driverOverride);
  }

  /** A fresh cluster for a root branch. Idempotent: a finished initdb is kept, a partial one redone. */
  async createRootBranchData(branchId: string): Promise<{ driver: StorageDriver }> {
    const dir = this.layout.branchDataDir(branchId);
    const driver = await this.driver();
    if (await exists(path.join(dir, '.lampion-initialized'))) return { driver };
    await removeDataDir(dir);
    await createDataDir(dir, driver, this.pg.user);
    await initCluster(this.pg, dir);
    await fsp.writeFile(path.join(dir, '.lampion-initialized'), '');
    await ensureOwnedDir(this.layout.walArchiveDir(branchId), this.pg.user);
    return { driver };
  }

  async removeBranchData(branchId: string): Promise<void> {
    await removeDataDir(this.layout.branchDataDir(branchId));
    await fsp.rm(this.layout.walArchiveDir(branchId), { recursive: true, force: true });
  }

  async startEndpoint(spec: EndpointSpec): Promise<void> {
    const dataDir = this.layout.branchDataDir(spec.branchId);
    const socketDir = this.layout.socketDir(spec.endpointId);
    await ensureOwnedDir(this.layout.endpointDir(spec.endpointId), this.pg.user);
    await fsp.mkdir(path.dirname(socketDir), { recursive: true });
    await ensureOwnedDir(socketDir, this.pg.user);
    await ensureOwnedDir(this.layout.walArchiveDir(spec.branchId), this.pg.user);
    if (await isRunning(this.pg, dataDir)) return;
    await writeRuntimeConf(this.pg, dataDir, {
      port: spec.port,
      socketDir,
      walArchiveDir: this.layout.walArchiveDir(spec.branchId),
    });
    await startCluster(this.pg, dataDir, this.layout.endpointLogFile(spec.endpointId));
  }

  async stopEndpoint(spec: Pick<EndpointSpec, 'branchId'>): Promise<void> {
    await stopCluster(this.pg, this.layout.branchDataDir(spec.branchId));
  }

  async removeEndpointFiles(endpointId: string): Promise<void> {
    await fsp.rm(this.layout.endpointDir(endpointId), { recursive: true, force: true });
    await fsp.rm(this.layout.socketDir(endpointId), { recursive: true, force: true });
  }

  endpointRunning(spec: Pick<EndpointSpec, 'branchId'>): Promise<boolean> {
    return isRunning(this.pg, this.layout.branchDataDir(spec.branchId));
  }

  /**
   * The user's role and the platform defaults of a new cluster. CREATEROLE is granted only when
   * the guard module is loaded: on Postgres 15 a CREATEROLE role could otherwise grant itself
   * pg_execute_server_program and reach the host shell.
   */
  async bootstrapRoles(spec: EndpointSpec, password: string): Promise<{ createRole: boolean }> {
    const createRole = Boolean(this.pg.guardLibrary);
    await withSystemClient(this.layout.socketDir(spec.endpointId), spec.port, async (c) => {
      const pw = c.escapeLiteral(password);
      const attrs = `LOGIN CREATEDB ${createRole ? 'CREATEROLE' : 'NOCREATEROLE'} NOSUPERUSER NOREPLICATION NOBYPASSRLS`;
      const existing = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [USER_ROLE]);
      const verb = existing.rowCount ? 'ALTER' : 'CREATE';
      await c.query(`${verb} ROLE ${c.escapeIdentifier(USER_ROLE)} WITH ${attrs} PASSWORD ${pw}`);
      await c.query(`GRANT pg_monitor, pg_signal_backend TO ${c.escapeIdentifier(USER_ROLE)}`);
      await c.query(`ALTER DATABASE postgres OWNER TO ${c.escapeIdentifier(USER_ROLE)}`);
      await c.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    });
    return { createRole };
  }
}
