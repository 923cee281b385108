import path from 'node:path';
import os from 'node:os';
import { createHash } from 'node:crypto';

/** Where a host keeps each kind of file under LAMPION_DATA_DIR. */
export class HostLayout {
  constructor(readonly dataDir: string) {}

  get branchesDir() {
    return path.join(this.dataDir, 'branches');
  }
  branchDataDir(branchId: string) {
    return path.join(this.branchesDir, branchId);
  }
  get endpointsDir() {
    return path.join(this.dataDir, 'endpoints');
  }
  endpointDir(endpointId: string) {
    return path.join(this.endpointsDir, endpointId);
  }
  endpointLogFile(endpointId: string) {
    return path.join(this.endpointDir(endpointId), 'postgres.log');
  }
  /** Unix socket paths are limited to 107 bytes; deep data dirs fall back to a short tmp path. */
  socketDir(endpointId: string) {
    const preferred = path.join(this.endpointDir(endpointId), 'sock');
    if (preferred.length + '/.s.PGSQL.65535.lock'.length < 100) return preferred;
    const tag = createHash('sha1').update(this.dataDir).digest('hex').slice(0, 10);
    return path.join(os.tmpdir(), `lampion-${tag}`, endpointId);
  }
  /** The compute's unix socket file, as libpq names it. */
  socketFile(endpointId: string, port: number) {
    return path.join(this.socketDir(endpointId), `.s.PGSQL.${port}`);
  }
  get walDir() {
    return path.join(this.dataDir, 'wal');
  }
  /** One directory per history of the branch below it (see walArchive.ts). */
  walArchiveDir(branchId: string) {
    return path.join(this.walDir, branchId);
  }
  /** Base backups live on the branches' filesystem: a btrfs base is a snapshot, which cannot cross filesystems. */
  get basesDir() {
    return path.join(this.branchesDir, '_bases');
  }
  /** The bases of one history of the branch, each with its <baseId>.json beside it. */
  historyBasesDir(branchId: string, historyId: string) {
    return path.join(this.basesDir, branchId, historyId);
  }
  baseDir(branchId: string, historyId: string, baseId: string) {
    return path.join(this.historyBasesDir(branchId, historyId), baseId);
  }
}
