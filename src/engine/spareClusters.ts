import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { HostLayout } from './layout';
import type { PgInstalls } from './pgInstalls';
import { createDataDir, removeDataDir, StorageDriver } from './storage';
import { initCluster, writeHba } from './cluster';
import { ensureOwnedDir } from './fs';

/** Written into a spare once its initdb finished; says what it was made for. */
const READY_MARKER = '.lampion-spare';

interface SpareMarker {
  major: number;
  driver: StorageDriver;
}

/**
 * Clusters made by initdb ahead of need, so a new root branch (a project, an import) takes one by
 * rename instead of waiting for initdb (most of a project's creation). Each spare is its own
 * initdb, so every project keeps a system identifier of its own. After a take, a new spare is
 * made in the background at the lowest CPU priority. A spare is ready only once its marker is
 * written: a half-made one (a crash mid-initdb) is removed by the next refill.
 */
export class SpareClusters {
  /** Refills under way in this process, by major. */
  private readonly refills = new Map<number, Promise<void>>();
  private closed = false;

  constructor(
    private readonly layout: HostLayout,
    private readonly pgs: PgInstalls,
    private readonly driver: () => Promise<StorageDriver>,
    /** Ready spares kept per major; 0 turns spares off. */
    private readonly perMajor: number,
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {}

  private get dir() {
    return path.join(this.layout.branchesDir, '_spares');
  }

  private async ready(major: number, driver: StorageDriver): Promise<string[]> {
    const names = await fsp.readdir(this.dir).catch(() => [] as string[]);
    const out: string[] = [];
    for (const n of names.sort()) {
      const m = await fsp
        .readFile(path.join(this.dir, n, READY_MARKER), 'utf8')
        .then((t) => JSON.parse(t) as SpareMarker)
        .catch(() => undefined);
      if (m?.major === major && m.driver === driver) out.push(n);
    }
    return out;
  }

  /**
   * Moves a ready spare of that major to `dest` (which must not exist); false when there is none.
   * A new one is started either way.
   */
  async take(major: number, dest: string): Promise<boolean> {
    if (this.perMajor <= 0) return false;
    const driver = await this.driver();
    let taken = false;
    for (const name of await this.ready(major, driver)) {
      try {
        await fsp.rename(path.join(this.dir, name), dest);
      } catch {
        continue; // taken by a concurrent create
      }
      await fsp.rm(path.join(dest, READY_MARKER), { force: true });
      // The access rules of this version of the platform, whatever version made the spare.
      await writeHba(this.pgs.get(major), dest);
      taken = true;
      break;
    }
    this.refill(major);
    return taken;
  }

  /** Makes spares of that major until there are enough, one at a time, in the background. */
  refill(major: number): void {
    if (this.perMajor <= 0 || this.closed || this.refills.has(major)) return;
    const job = this.fill(major)
      .catch(this.onError)
      .finally(() => this.refills.delete(major));
    this.refills.set(major, job);
  }

  private async fill(major: number): Promise<void> {
    const pg = this.pgs.get(major);
    await ensureOwnedDir(this.dir, undefined, 0o711);
    const driver = await this.driver();
    const ready = new Set(await this.ready(major, driver));
    // Half-made spares of this major (this process makes one at a time per major, so none is in the making).
    for (const n of await fsp.readdir(this.dir).catch(() => [] as string[])) {
      if (!ready.has(n) && n.startsWith(`${major}-`)) await removeDataDir(path.join(this.dir, n));
    }
    // Counted again each time: a create may take one while the next is being made.
    while (!this.closed && (await this.ready(major, driver)).length < this.perMajor) {
      const dir = path.join(this.dir, `${major}-${randomUUID()}`);
      await createDataDir(dir, driver, pg.user);
      await initCluster(pg, dir, { background: true });
      const marker: SpareMarker = { major, driver };
      await fsp.writeFile(path.join(dir, READY_MARKER), JSON.stringify(marker));
    }
  }

  /** Waits for the refills under way. */
  async idle(): Promise<void> {
    await Promise.all([...this.refills.values()]);
  }

  /** The ready spares, by directory name (for tests and health). */
  async list(major: number): Promise<string[]> {
    return this.ready(major, await this.driver());
  }

  /** Waits for refills under way (so nothing writes under the data dir after a stop). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.refills.values()]);
  }
}
