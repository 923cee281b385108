/**
 * Cold start: the first query on a suspended endpoint through the proxy (the proxy wakes it),
 * against the raw floor measured in the same run, interleaved, on the same compute: startCluster
 * + the same client's first query straight to the compute's port (TCP, same user and password,
 * SCRAM, no TLS), without Temporal, API or proxy. The floor over the unix socket with trust auth
 * (no password exchange at all) is printed too.
 *
 *   npm run bench:cold-start -- [--runs 10] [--driver copy|btrfs]
 *
 * Each run: suspend via the API (not timed) → time connect + SELECT 1 through the proxy → time it
 * again with the compute running (what the proxy and TLS cost without a wake) → stop the same
 * cluster with stopCluster (not timed) → time startCluster + the client's SELECT 1 → stop, time
 * startCluster + SELECT 1 over the socket → leave it running, so catalog and reality agree when
 * the next run suspends via the API.
 */
import os from 'node:os';
import { Client } from 'pg';
import { startCluster, stopCluster, withSystemClient } from '../src/engine/cluster';
import { USER_ROLE } from '../src/domain/roles';
import {
  argList,
  argNumber,
  ensureBtrfsVolume,
  fmtMs,
  machineLoad,
  median,
  quantile,
  startBenchStack,
  table,
} from './support';

const RUNS = argNumber('runs', 10);
const DRIVER = argList('driver', ['copy'])[0];
/** The Postgres major of the project measured (default: the newest installed). */
const MAJOR = argNumber('pg', 0);

async function main() {
  if (DRIVER !== 'copy' && DRIVER !== 'btrfs') throw new Error(`unknown driver ${DRIVER}`);
  const baseDir = DRIVER === 'btrfs' ? ensureBtrfsVolume('/var/tmp/lampion-bench-btrfs', '16G') : os.tmpdir();
  const loadBefore = machineLoad();
  const b = await startBenchStack({ baseDir, prefix: 'lampion-bench-cold-', env: { LAMPION_STORAGE_DRIVER: DRIVER } });
  const engine = b.stack.engine;
  const pg = MAJOR ? engine.pgs.get(MAJOR) : engine.pgs.newest;
  try {
    const p = (await b.request('POST', '/v1/projects', { name: 'cold', pg_version: pg.major })).body;
    if (!p?.endpoint_id) throw new Error(`project create failed: ${JSON.stringify(p)}`);
    const epPath = `/v1/projects/${p.id}/endpoints/${p.endpoint_id}`;
    // The sweep must not suspend it behind our back.
    const patched = await b.request('PATCH', epPath, { auto_suspend_seconds: 0 });
    if (patched.status !== 200) throw new Error(`PATCH ${epPath} → ${patched.status} ${JSON.stringify(patched.body)}`);
    const pgPort: number = patched.body.pg_port;
    const dataDir = engine.layout.branchDataDir(p.branch_id);
    const socketDir = engine.layout.socketDir(p.endpoint_id);
    const logFile = engine.layout.endpointLogFile(p.endpoint_id);

    async function suspend() {
      const r = await b.request('POST', `${epPath}/suspend`);
      if (r.status !== 200 || r.body.status !== 'suspended') throw new Error(`suspend → ${r.status} ${JSON.stringify(r.body)}`);
    }

    /** Connect + SELECT 1 with node-postgres, as a user's app would. */
    const firstQuery = async (config: ConstructorParameters<typeof Client>[0]): Promise<number> => {
      const c = new Client(config);
      c.on('error', () => undefined);
      const t0 = performance.now();
      await c.connect();
      await c.query('SELECT 1');
      const ms = performance.now() - t0;
      await c.end();
      return ms;
    };
    const viaProxy = () =>
      firstQuery({ host: p.host, port: p.port, user: USER_ROLE, password: p.pg_password, database: `${p.endpoint_id}.postgres`, ssl: { ca: b.ca } });
    const direct = () => firstQuery({ host: '127.0.0.1', port: pgPort, user: USER_ROLE, password: p.pg_password, database: 'postgres' });

    async function lampion(): Promise<{ ms: number; warm: number }> {
      await suspend();
      const ms = await viaProxy();
      // The wake's workflow records in the background; let it finish before the next suspend.
      await new Promise((r) => setTimeout(r, 300));
      return { ms, warm: await viaProxy() };
    }

    async function floor(): Promise<{ ms: number; start: number; query: number; socketMs: number; socketQuery: number }> {
      await stopCluster(pg, dataDir);
      const t0 = performance.now();
      await startCluster(pg, dataDir, logFile);
      const t1 = performance.now();
      const query = await direct();
      await stopCluster(pg, dataDir);
      const t2 = performance.now();
      await startCluster(pg, dataDir, logFile);
      const t3 = performance.now();
      await withSystemClient(socketDir, pgPort, (c) => c.query('SELECT 1'));
      const t4 = performance.now();
      return { ms: t1 - t0 + query, start: t1 - t0, query, socketMs: t4 - t2, socketQuery: t4 - t3 };
    }

    await lampion(); // warm-up: workflow cache, TLS, first connections
    await floor();
    const L: { ms: number; warm: number }[] = [];
    const F: Awaited<ReturnType<typeof floor>>[] = [];
    for (let i = 0; i < RUNS; i++) {
      // Interleaved, so drift on the machine hits both sides alike.
      L.push(await lampion());
      F.push(await floor());
      process.stderr.write(`[cold-start] run ${i + 1}/${RUNS}: lampion ${fmtMs(L.at(-1)!.ms)}, floor ${fmtMs(F.at(-1)!.ms)}\n`);
    }
    const l = L.map((s) => s.ms);
    const f = F.map((s) => s.ms);
    const fs = F.map((s) => s.socketMs);
    const ratio = median(l) / median(f);
    console.log(`\ncold-start  runs=${RUNS}  Postgres ${pg.major}  driver=${await engine.driver()}  compute 0.25 CU  limits ${engine.limiter.enforced ? 'enforced' : 'not enforced'}`);
    console.log(`  ${loadBefore} before, ${machineLoad()} after`);
    console.log(
      table(
        ['', 'median', 'p95'],
        [
          ['lampion: suspended → connect + SELECT 1 via proxy, TLS (wakes it)', fmtMs(median(l)), fmtMs(quantile(l, 0.95))],
          ['raw floor: startCluster + same client, direct TCP, SELECT 1', fmtMs(median(f)), fmtMs(quantile(f, 0.95))],
          ['ratio (median)', `${ratio.toFixed(2)}`, `target ≤ 1.5 ${ratio <= 1.5 ? 'met' : 'MISSED'}`],
          ['raw floor over the unix socket, trust auth (no password exchange)', fmtMs(median(fs)), fmtMs(quantile(fs, 0.95))],
          ['ratio to that floor (median)', `${(median(l) / median(fs)).toFixed(2)}`, ''],
        ],
      ),
    );
    const row = (label: string, xs: number[]) => [label, fmtMs(median(xs)), fmtMs(quantile(xs, 0.95))];
    console.log('\nwhere the time goes (medians, p95)');
    console.log(
      table(
        ['', 'median', 'p95'],
        [
          row('lampion total', l),
          row('  same client via proxy, compute already running (TLS, routing, SCRAM, query)', L.map((s) => s.warm)),
          row('  the wake (total minus the above)', L.map((s) => s.ms - s.warm)),
          row('floor total', f),
          row('  startCluster', F.map((s) => s.start)),
          row('  first query (same client, direct TCP, SCRAM)', F.map((s) => s.query)),
          row('  first query (unix socket, trust)', F.map((s) => s.socketQuery)),
        ],
        '    ',
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
