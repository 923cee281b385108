/**
 * Restore: time to a queryable restored branch for a branch of ~1 GB with ~100 MB of WAL to
 * replay, against the raw floor in the same run, interleaved: the same base copied by hand
 * (btrfs: a writable snapshot of the read-only base; copy: cp -a), recovery.signal +
 * restore_command + recovery_target_lsn written by hand, pg_ctl start, wait until promoted,
 * SELECT 1 over the socket. No Temporal, API or proxy in the floor.
 *
 *   npm run bench:restore -- [--runs 3] [--driver btrfs|copy] [--pg 18] [--scale 68] [--wal-mb 100]
 *
 * Lampion: POST /v1/projects/{id}/backups/{bid}/restore → 201 → first SELECT 1 through the proxy.
 */
import os from 'node:os';
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { Client } from 'pg';
import { pgBin, startCluster, stopCluster, withSystemClient, waitPromoted, writeRuntimeConf } from '../src/engine/cluster';
import { run } from '../src/engine/exec';
import { removeDataDir } from '../src/engine/storage';
import { ensureOwnedDir } from '../src/engine/fs';
import { archiveDir, restoreCommand } from '../src/engine/walArchive';
import { lsnToBigInt } from '../src/domain/lsn';
import { USER_ROLE } from '../src/domain/roles';
import { argList, argNumber, ensureBtrfsVolume, fmtMs, freePort, machineLoad, median, quantile, startBenchStack, table } from './support';

const RUNS = argNumber('runs', 3);
const DRIVER = argList('driver', ['btrfs'])[0];
const MAJOR = argNumber('pg', 0);
const SCALE = argNumber('scale', 68);
const WAL_MB = argNumber('wal-mb', 100);

const log = (m: string) => process.stderr.write(`[restore] ${m}\n`);

async function main() {
  if (DRIVER !== 'copy' && DRIVER !== 'btrfs') throw new Error(`unknown driver ${DRIVER}`);
  const baseDir = DRIVER === 'btrfs' ? ensureBtrfsVolume('/var/tmp/lampion-bench-btrfs', '16G') : os.tmpdir();
  const loadBefore = machineLoad();
  const b = await startBenchStack({ baseDir, prefix: 'lampion-bench-restore-', env: { LAMPION_STORAGE_DRIVER: DRIVER } });
  const engine = b.stack.engine;
  const pg = MAJOR ? engine.pgs.get(MAJOR) : engine.pgs.newest;
  const expect = async (method: string, p: string, body: unknown, status: number[]) => {
    const r = await b.request(method, p, body);
    if (!status.includes(r.status)) throw new Error(`${method} ${p} → ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  try {
    const p = await expect('POST', '/v1/projects', { name: 'restore', pg_version: pg.major }, [201]);
    const epPath = `/v1/projects/${p.id}/endpoints/${p.endpoint_id}`;
    const ep = await expect('PATCH', epPath, { auto_suspend_seconds: 0, compute_cu: 2 }, [200]);
    const env = { ...process.env, PGPASSWORD: p.pg_password, PGSSLMODE: 'disable' };
    const t0 = performance.now();
    await run(pgBin(pg, 'pgbench'), ['-i', '-q', '-s', String(SCALE), '-h', '127.0.0.1', '-p', String(ep.pg_port), '-U', USER_ROLE, 'postgres'], { env, timeoutMs: 3600_000 });
    log(`pgbench -i -s ${SCALE} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    // The base: the history has none yet, so the first named backup takes it.
    await expect('POST', `/v1/projects/${p.id}/backups`, { name: 'base' }, [201]);
    const user = new Client({ host: '127.0.0.1', port: ep.pg_port, user: USER_ROLE, password: p.pg_password, database: 'postgres' });
    await user.connect();
    const lsn = async () => (await user.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l;
    const from = lsnToBigInt(await lsn());
    let step = 0;
    while (lsnToBigInt(await lsn()) - from < BigInt(WAL_MB) * 1024n * 1024n) {
      // Contiguous slices: a scattered update would full-page-image every page of the table at once.
      const lo = (step++ * 20_000) % (SCALE * 100_000);
      await user.query(`UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid > ${lo} AND aid <= ${lo + 20_000}`);
    }
    const walMb = Number(lsnToBigInt(await lsn()) - from) / 2 ** 20;
    await user.end();
    const target = await expect('POST', `/v1/projects/${p.id}/backups`, { name: 'target' }, [201]);
    await expect('PATCH', epPath, { compute_cu: 0.25 }, [200]);
    const size = Number((await withSystemClient(engine.layout.socketDir(p.endpoint_id), ep.pg_port, (c) => c.query("SELECT pg_database_size('postgres')::text AS s"))).rows[0].s);
    log(`branch ${(size / 2 ** 20).toFixed(0)} MiB, ${walMb.toFixed(0)} MiB of WAL after the base, target ${target.lsn}`);

    const base = await b.stack.db.selectFrom('base_backups').selectAll().where('branch_id', '=', p.branch_id).executeTakeFirstOrThrow();
    const baseDirPath = engine.layout.baseDir(p.branch_id, base.history_id, base.id);
    const archive = archiveDir(engine.layout, { branchId: p.branch_id, historyId: base.history_id });

    async function lampion(i: number): Promise<{ total: number; api: number }> {
      const t = performance.now();
      const r = await expect('POST', `/v1/projects/${p.id}/backups/${target.id}/restore`, { name: `r-${i}` }, [201]);
      const api = performance.now() - t;
      const u = new URL(r.connection_string);
      const c = new Client({ host: u.hostname, port: Number(u.port), user: decodeURIComponent(u.username), password: decodeURIComponent(u.password), database: u.pathname.slice(1), ssl: { ca: b.ca } });
      await c.connect();
      await c.query('SELECT 1');
      const total = performance.now() - t;
      await c.end();
      await expect('DELETE', `/v1/projects/${p.id}/branches/${r.branch_id}`, undefined, [204]);
      return { total, api };
    }

    async function floor(i: number): Promise<number> {
      const dir = path.join(engine.layout.branchesDir, `floor-${i}`);
      const sock = path.join(b.dataDir, `floor-sock-${i}`);
      await ensureOwnedDir(sock, pg.user);
      const port = await freePort(47000 + i * 7);
      const t = performance.now();
      if (DRIVER === 'btrfs') await run('btrfs', ['subvolume', 'snapshot', baseDirPath, dir]);
      else await run('cp', ['-a', '--', baseDirPath, dir], { user: pg.user, timeoutMs: 3600_000 });
      await fsp.rm(path.join(dir, 'postmaster.pid'), { force: true });
      await fsp.writeFile(path.join(dir, 'recovery.signal'), '');
      await fsp.chown(path.join(dir, 'recovery.signal'), pg.user?.uid ?? process.getuid!(), pg.user?.gid ?? process.getgid!());
      await writeRuntimeConf(pg, dir, { port, socketDir: sock, recovery: { restoreCommand: restoreCommand(archive), targetLsn: target.lsn } });
      const logFile = path.join(sock, 'log');
      await startCluster(pg, dir, logFile);
      await waitPromoted(sock, port, dir, logFile);
      await withSystemClient(sock, port, (c) => c.query('SELECT 1'));
      const ms = performance.now() - t;
      await stopCluster(pg, dir, 'immediate');
      await removeDataDir(dir);
      return ms;
    }

    const L: { total: number; api: number }[] = [];
    const F: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      L.push(await lampion(i));
      F.push(await floor(i));
      log(`run ${i + 1}/${RUNS}: lampion ${fmtMs(L.at(-1)!.total)}, floor ${fmtMs(F.at(-1))}`);
    }
    const l = L.map((x) => x.total);
    const ratio = median(l) / median(F);
    console.log(`\nrestore  runs=${RUNS}  Postgres ${pg.major}  driver=${DRIVER}  branch ${(size / 2 ** 20).toFixed(0)} MiB  WAL to replay ${walMb.toFixed(0)} MiB`);
    console.log(`  ${loadBefore} before, ${machineLoad()} after`);
    console.log(
      table(
        ['', 'median', 'p95'],
        [
          ['lampion: POST …/backups/{bid}/restore → first SELECT 1 via proxy', fmtMs(median(l)), fmtMs(quantile(l, 0.95))],
          ['  of which POST → 201', fmtMs(median(L.map((x) => x.api))), fmtMs(quantile(L.map((x) => x.api), 0.95))],
          ['raw floor: same base + recovery_target_lsn by hand, promoted, SELECT 1', fmtMs(median(F)), fmtMs(quantile(F, 0.95))],
          ['ratio (median)', ratio.toFixed(2), `target ≤ 1.3 ${ratio <= 1.3 ? 'met' : 'MISSED'}`],
        ],
      ),
    );
  } finally {
    await b.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
