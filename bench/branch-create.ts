/**
 * Branch creation, API call (POST /v1/projects/{id}/branches) → first successful query on the
 * child through the proxy, for an idle running parent of ~30 MB and ~1 GB (pgbench -i), on each
 * storage driver, against the raw floor measured in the same run, interleaved: forkDataDir on the
 * parent's data dir (btrfs: CHECKPOINT + subvolume snapshot; copy: pg_basebackup) + postgres
 * start of the child on a free port + first query over its socket, without Temporal, API or proxy.
 *
 *   npm run bench:branch-create -- [--runs 7] [--drivers btrfs,copy] [--budget-min 14]
 *                                  [--scale-small 2] [--scale-large 68]
 *
 * btrfs runs in a loop-mounted volume (scripts/btrfs-volume.sh up /var/tmp/lampion-bench-btrfs 16G,
 * needs root); copy under os.tmpdir(). Each driver gets its own stack, started with
 * LAMPION_STORAGE_DRIVER set explicitly. The 1 GB cells get fewer runs when the full count would
 * not fit the time budget; the output says so.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { forkDataDir } from '../src/engine/fork';
import { removeDataDir, type StorageDriver } from '../src/engine/storage';
import { startCluster, stopCluster, writeRuntimeConf, withSystemClient } from '../src/engine/cluster';
import { ensureOwnedDir } from '../src/engine/fs';
import { USER_ROLE } from '../src/domain/roles';
import { pgSettingsForCu } from '../src/domain/sizing';
import {
  argList,
  argNumber,
  BenchStack,
  ensureBtrfsVolume,
  fmtMs,
  freePort,
  machineLoad,
  median,
  quantile,
  startBenchStack,
  table,
  workflowBreakdownRows,
  workflowTimings,
  WorkflowTimings, expectStatus } from './support';

const RUNS = argNumber('runs', 7);
const DRIVERS = argList('drivers', ['btrfs', 'copy']) as StorageDriver[];
/** Postgres majors to measure, each beside its own floor (default: the newest installed). */
const MAJORS = argList('pg', []).map(Number);
const BUDGET_MS = argNumber('budget-min', 14) * 60_000;
const SIZES = [
  { label: '30 MB', scale: argNumber('scale-small', 2) },
  { label: '1 GB', scale: argNumber('scale-large', 68) },
];
const BTRFS_VOLUME = '/var/tmp/lampion-bench-btrfs';
const BTRFS_SIZE = '16G';
/** The 1 GB cells never drop below this many runs, budget or not. */
const MIN_RUNS = 3;
/** Compute size while pgbench fills the parent (faster fill); it is put back before measuring. */
const FILL_CU = 2;

const startedAt = performance.now();
const loadAtStart = machineLoad();
const log = (msg: string) => process.stderr.write(`[branch-create ${((performance.now() - startedAt) / 1000).toFixed(0)}s] ${msg}\n`);

interface Parent {
  projectId: string;
  branchId: string;
  endpointId: string;
  port: number;
  computeCu: number;
  dataDir: string;
  socketDir: string;
  dbBytes: number;
}

interface LampionSample {
  total: number;
  /** POST → 201. */
  api: number;
  /** 201 → first row through the proxy (TLS, SCRAM, SELECT 1). */
  query: number;
  wf: WorkflowTimings;
}

interface FloorSample {
  total: number;
  fork: number;
  start: number;
  query: number;
}

interface Cell {
  size: string;
  scale: number;
  runs: number;
  parent: Parent;
  lampion: LampionSample[];
  floor: FloorSample[];
}

interface DriverResult {
  /** The driver and the major, e.g. "btrfs pg18". */
  driver: string;
  dataDir: string;
  cells: Cell[];
  limitsEnforced: boolean;
  note?: string;
}

function runCommand(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

/** process.env without libpq's PG* variables, plus the given ones. */
function pgEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  return { ...env, ...extra };
}

/** A project whose primary compute holds a pgbench data set of the given scale, idle and running. */
async function makeParent(b: BenchStack, name: string, scale: number, major: number): Promise<Parent> {
  const engine = b.stack.engine;
  const p = await expectStatus(b, 'POST', '/v1/projects', { name, pg_version: major }, [201]);
  const epPath = `/v1/projects/${p.id}/endpoints/${p.endpoint_id}`;
  // No auto-suspend: the parent must stay up through the whole benchmark.
  await expectStatus(b, 'PATCH', epPath, { auto_suspend_seconds: 0, compute_cu: FILL_CU }, [200]);
  const ep = await expectStatus(b, 'GET', epPath, undefined, [200]);
  const t0 = performance.now();
  const fill = await runCommand(
    path.join(engine.pgs.get(major).binDir, 'pgbench'),
    ['-i', '-q', '-s', String(scale), '-h', '127.0.0.1', '-p', String(ep.pg_port), '-U', USER_ROLE, 'postgres'],
    pgEnv({ PGPASSWORD: p.pg_password, PGSSLMODE: 'disable' }),
  );
  if (fill.code !== 0) throw new Error(`pgbench -i -s ${scale} failed (${fill.code}):\n${fill.out}`);
  await expectStatus(b, 'PATCH', epPath, { compute_cu: 0.25 }, [200]);
  const parent: Parent = {
    projectId: p.id,
    branchId: p.branch_id,
    endpointId: p.endpoint_id,
    port: ep.pg_port,
    computeCu: 0.25,
    dataDir: engine.layout.branchDataDir(p.branch_id),
    socketDir: engine.layout.socketDir(p.endpoint_id),
    dbBytes: 0,
  };
  // The fill's dirty pages on disk now, not in the first measured fork.
  parent.dbBytes = await withSystemClient(parent.socketDir, parent.port, async (c) => {
    await c.query('CHECKPOINT');
    return Number((await c.query("SELECT pg_database_size('postgres') AS n")).rows[0].n);
  });
  await runCommand('sync', ['-f', parent.dataDir], process.env);
  log(`parent ${name}: pgbench -i -s ${scale} in ${((performance.now() - t0) / 1000).toFixed(1)} s, pg_database_size ${(parent.dbBytes / 2 ** 20).toFixed(0)} MiB`);
  return parent;
}

async function runDriver(driver: StorageDriver, majorArg: number | undefined, deadline: number, driversLeft: number): Promise<DriverResult> {
  const baseDir = driver === 'btrfs' ? ensureBtrfsVolume(BTRFS_VOLUME, BTRFS_SIZE) : os.tmpdir();
  const b = await startBenchStack({ baseDir, prefix: 'lampion-bench-branch-', env: { LAMPION_STORAGE_DRIVER: driver } });
  const engine = b.stack.engine;
  const pg = majorArg ? engine.pgs.get(majorArg) : engine.pgs.newest;
  const major = pg.major;
  let floorSeq = 0;
  try {
    const actual = await engine.driver();
    if (actual !== driver) throw new Error(`stack runs the ${actual} driver, not ${driver}`);
    log(`${driver}: stack up in ${b.dataDir}`);

    const cells: Cell[] = [];
    for (const s of SIZES) {
      const parent = await makeParent(b, `parent-${s.scale}`, s.scale, major);
      cells.push({ size: s.label, scale: s.scale, runs: RUNS, parent, lampion: [], floor: [] });
    }

    async function lampion(cell: Cell, name: string): Promise<LampionSample> {
      const t0 = performance.now();
      const res = await b.request('POST', `/v1/projects/${cell.parent.projectId}/branches`, { name });
      if (res.status !== 201) throw new Error(`branch create → ${res.status} ${JSON.stringify(res.body)}`);
      const br = res.body;
      const t1 = performance.now();
      const c = new Client({ host: br.host, port: br.port, user: USER_ROLE, password: br.pg_password, database: `${br.compute_id}.postgres`, ssl: { ca: b.ca } });
      c.on('error', () => undefined);
      await c.connect();
      await c.query('SELECT 1');
      const t2 = performance.now();
      await c.end();
      // Before the delete: it reuses the workflow id branch/<id>.
      const wf = await workflowTimings(b.stack, `branch/${br.id}`);
      await expectStatus(b, 'DELETE', `/v1/projects/${cell.parent.projectId}/branches/${br.id}`, undefined, [204]);
      return { total: t2 - t0, api: t1 - t0, query: t2 - t1, wf };
    }

    async function floor(cell: Cell): Promise<FloorSample> {
      const n = floorSeq++;
      const dir = path.join(engine.layout.branchesDir, `floor-${n}`);
      const sock = path.join(engine.layout.endpointsDir, `floor-${n}`);
      const wal = path.join(engine.layout.walDir, `floor-${n}`);
      await ensureOwnedDir(sock, pg.user);
      await ensureOwnedDir(wal, pg.user);
      const port = await freePort(46000);
      const src = { dataDir: cell.parent.dataDir, running: true, socketDir: cell.parent.socketDir, port: cell.parent.port };
      const t0 = performance.now();
      await forkDataDir(pg, driver, src, dir);
      const t1 = performance.now();
      await writeRuntimeConf(pg, dir, { port, socketDir: sock, walArchiveDir: wal, extra: pgSettingsForCu(cell.parent.computeCu) });
      await startCluster(pg, dir, path.join(sock, 'log'));
      const t2 = performance.now();
      await withSystemClient(sock, port, (c) => c.query('SELECT 1'));
      const t3 = performance.now();
      await stopCluster(pg, dir);
      await removeDataDir(dir);
      fs.rmSync(sock, { recursive: true, force: true });
      fs.rmSync(wal, { recursive: true, force: true });
      return { total: t3 - t0, fork: t1 - t0, start: t2 - t1, query: t3 - t2 };
    }

    // Warm-up, one of each per cell (not counted); its duration sizes the run count to the budget.
    const cost = new Map<Cell, number>();
    for (const cell of cells) {
      const t0 = performance.now();
      const l = await lampion(cell, `warmup-${cell.scale}`);
      const f = await floor(cell);
      cost.set(cell, performance.now() - t0);
      log(`${driver} ${cell.size} warm-up: lampion ${fmtMs(l.total)}, floor ${fmtMs(f.total)}`);
    }
    const teardownMs = 15_000;
    const avail = (deadline - performance.now()) / driversLeft - teardownMs;
    const [small, large] = cells;
    const fit = Math.floor((avail - RUNS * cost.get(small)!) / cost.get(large)!);
    let note: string | undefined;
    if (fit < RUNS) {
      large.runs = Math.max(MIN_RUNS, fit);
      note = `${large.size} cells: ${large.runs} runs instead of ${RUNS}, to stay within the ${BUDGET_MS / 60_000}-minute budget (one ${large.size} lampion+floor pair takes ~${(cost.get(large)! / 1000).toFixed(0)} s)`;
      log(`${driver}: ${note}`);
    }

    for (let i = 0; i < RUNS; i++) {
      for (const cell of cells) {
        if (i >= cell.runs) continue;
        // Interleaved, so drift on the machine hits both sides alike.
        const l = await lampion(cell, `b-${cell.scale}-${i}`);
        const f = await floor(cell);
        cell.lampion.push(l);
        cell.floor.push(f);
        log(`${driver} ${cell.size} run ${i + 1}/${cell.runs}: lampion ${fmtMs(l.total)} (api ${fmtMs(l.api)}), floor ${fmtMs(f.total)} (fork ${fmtMs(f.fork)}, start ${fmtMs(f.start)})`);
      }
    }
    return { driver: `${driver} pg${major}`, dataDir: b.dataDir, cells, limitsEnforced: engine.limiter.enforced, note };
  } finally {
    await b.stop();
  }
}

function report(results: DriverResult[]) {
  const q = (xs: number[], p: number) => quantile(xs, p);
  console.log(`\nbranch-create  runs=${RUNS} per cell (default 7)  parent compute 0.25 CU, idle, running`);
  console.log(`  ${loadAtStart} at start, ${machineLoad()} at the end`);
  const rows: string[][] = [];
  for (const r of results) {
    for (const c of r.cells) {
      const l = c.lampion.map((s) => s.total);
      const f = c.floor.map((s) => s.total);
      rows.push([
        r.driver,
        `${c.size} (-s ${c.scale}, ${(c.parent.dbBytes / 2 ** 20).toFixed(0)} MiB)`,
        String(c.lampion.length),
        fmtMs(median(l)),
        fmtMs(q(l, 0.95)),
        fmtMs(median(f)),
        fmtMs(q(f, 0.95)),
        (median(l) / median(f)).toFixed(2),
      ]);
    }
  }
  console.log(table(['driver', 'parent (pg_database_size)', 'runs', 'lampion med', 'p95', 'floor med', 'p95', 'ratio'], rows));
  console.log('  lampion = POST /v1/projects/{id}/branches → first SELECT 1 on the child via the proxy (TLS, SCRAM)');
  console.log('  floor   = forkDataDir (btrfs: CHECKPOINT + snapshot; copy: pg_basebackup) + writeRuntimeConf + startCluster + SELECT 1 over the socket');
  console.log('');
  for (const r of results) {
    const [small, large] = r.cells;
    if (!small || !large) continue;
    const lr = median(large.lampion.map((s) => s.total)) / median(small.lampion.map((s) => s.total));
    const fr = median(large.floor.map((s) => s.total)) / median(small.floor.map((s) => s.total));
    const target = r.driver.startsWith('btrfs') ? '  (target ≤ 1.3)' : '';
    console.log(`  ${r.driver.padEnd(10)} lampion median ${large.size} / ${small.size} = ${lr.toFixed(2)}${target}   floor ${fr.toFixed(2)}`);
  }
  for (const r of results) {
    if (!r.driver.startsWith('btrfs')) continue;
    for (const c of r.cells) {
      const ratio = median(c.lampion.map((s) => s.total)) / median(c.floor.map((s) => s.total));
      console.log(`  ${r.driver} ${c.size}: ratio ${ratio.toFixed(2)} (target ≤ 2) ${ratio <= 2 ? 'met' : 'MISSED'}`);
    }
  }
  for (const r of results) if (r.note) console.log(`  note (${r.driver}): ${r.note}`);
  for (const r of results) if (r.limitsEnforced) console.log(`  note (${r.driver}): cgroup CPU/memory limits enforced on computes (0.25 CU = 0.25 vCPU, 512 MiB)`);

  console.log('\nwhere the time goes (medians, p95)');
  for (const r of results) {
    for (const c of r.cells) {
      const L = c.lampion;
      const F = c.floor;
      const row = (label: string, xs: number[]) => [label, fmtMs(median(xs)), fmtMs(quantile(xs, 0.95))];
      const tail = L.map((s) => s.api - s.wf.totalMs);
      console.log(`\n  ${r.driver} ${c.size}`);
      console.log(
        table(
          ['', 'median', 'p95'],
          [
            row('lampion total', L.map((s) => s.total)),
            row('  POST → 201', L.map((s) => s.api)),
            ...workflowBreakdownRows(L.map((s) => s.wf)),
            row('  API outside the workflow (start, result, queries)', tail),
            row('  201 → first row via proxy', L.map((s) => s.query)),
            row('floor total', F.map((s) => s.total)),
            row('  forkDataDir', F.map((s) => s.fork)),
            row('  writeRuntimeConf + startCluster', F.map((s) => s.start)),
            row('  first query (socket)', F.map((s) => s.query)),
          ],
          '    ',
        ),
      );
    }
  }
}

async function main() {
  const deadline = startedAt + BUDGET_MS;
  const results: DriverResult[] = [];
  const runs = DRIVERS.flatMap((driver) => (MAJORS.length ? MAJORS : [undefined]).map((major) => ({ driver, major })));
  for (const [i, { driver, major }] of runs.entries()) {
    if (driver !== 'btrfs' && driver !== 'copy') throw new Error(`unknown driver ${driver}`);
    results.push(await runDriver(driver, major, deadline, runs.length - i));
  }
  report(results);
  log(`done in ${((performance.now() - startedAt) / 60_000).toFixed(1)} min`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
