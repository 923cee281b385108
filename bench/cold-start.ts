/**
 * Cold start: the first query on a suspended endpoint through the proxy (the proxy wakes it via
 * the resumeEndpoint workflow), against the raw floor measured in the same run, interleaved, on the
 * same compute: startCluster + first query over its socket, without Temporal, API or proxy.
 *
 *   npm run bench:cold-start -- [--runs 10] [--driver copy|btrfs]
 *
 * Each run: suspend via the API (not timed) → time connect + SELECT 1 through the proxy → stop the
 * same cluster with stopCluster (not timed; the catalog still says running) → time startCluster +
 * SELECT 1 → leave it running, so catalog and reality agree when the next run suspends via the API.
 */
import os from 'node:os';
import { Client } from 'pg';
import { startCluster, stopCluster, withSystemClient } from '../src/engine/cluster';
import { USER_ROLE } from '../src/engine/host';
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
  workflowBreakdownRows,
  workflowTimings,
  WorkflowTimings,
} from './support';

const RUNS = argNumber('runs', 10);
const DRIVER = argList('driver', ['copy'])[0];

async function main() {
  if (DRIVER !== 'copy' && DRIVER !== 'btrfs') throw new Error(`unknown driver ${DRIVER}`);
  const baseDir = DRIVER === 'btrfs' ? ensureBtrfsVolume('/var/tmp/lampion-bench-btrfs', '16G') : os.tmpdir();
  const loadBefore = machineLoad();
  const b = await startBenchStack({ baseDir, prefix: 'lampion-bench-cold-', env: { LAMPION_STORAGE_DRIVER: DRIVER } });
  const engine = b.stack.engine;
  const pg = engine.pg;
  try {
    const p = (await b.request('POST', '/v1/projects', { name: 'cold' })).body;
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

    async function lampion(): Promise<{ ms: number; wf: WorkflowTimings }> {
      await suspend();
      const c = new Client({ host: p.host, port: p.port, user: USER_ROLE, password: p.pg_password, database: `${p.endpoint_id}.postgres`, ssl: { ca: b.ca } });
      c.on('error', () => undefined);
      const t0 = performance.now();
      await c.connect();
      await c.query('SELECT 1');
      const ms = performance.now() - t0;
      await c.end();
      // Before the next suspend, which reuses the workflow id endpoint-state/<id>.
      const wf = await workflowTimings(b.stack, `endpoint-state/${p.endpoint_id}`);
      return { ms, wf };
    }

    async function floor(): Promise<{ ms: number; start: number; query: number }> {
      await stopCluster(pg, dataDir);
      const t0 = performance.now();
      await startCluster(pg, dataDir, logFile);
      const t1 = performance.now();
      await withSystemClient(socketDir, pgPort, (c) => c.query('SELECT 1'));
      const t2 = performance.now();
      return { ms: t2 - t0, start: t1 - t0, query: t2 - t1 };
    }

    await lampion(); // warm-up: workflow cache, TLS, first connections
    await floor();
    const L: { ms: number; wf: WorkflowTimings }[] = [];
    const F: { ms: number; start: number; query: number }[] = [];
    for (let i = 0; i < RUNS; i++) {
      // Interleaved, so drift on the machine hits both sides alike.
      L.push(await lampion());
      F.push(await floor());
      process.stderr.write(`[cold-start] run ${i + 1}/${RUNS}: lampion ${fmtMs(L.at(-1)!.ms)}, floor ${fmtMs(F.at(-1)!.ms)}\n`);
    }
    const l = L.map((s) => s.ms);
    const f = F.map((s) => s.ms);
    const ratio = median(l) / median(f);
    console.log(`\ncold-start  runs=${RUNS}  driver=${await engine.driver()}  compute 0.25 CU  limits ${engine.limiter.enforced ? 'enforced' : 'not enforced'}`);
    console.log(`  ${loadBefore} before, ${machineLoad()} after`);
    console.log(
      table(
        ['', 'median', 'p95'],
        [
          ['lampion: suspended → connect + SELECT 1 via proxy (wakes it)', fmtMs(median(l)), fmtMs(quantile(l, 0.95))],
          ['raw floor: startCluster + SELECT 1 over the socket', fmtMs(median(f)), fmtMs(quantile(f, 0.95))],
          ['ratio (median)', `${ratio.toFixed(2)}`, `target ≤ 1.5 ${ratio <= 1.5 ? 'met' : 'MISSED'}`],
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
          ...workflowBreakdownRows(L.map((s) => s.wf)),
          row('  outside the workflow (TLS, resolve, start+result, SCRAM, query)', L.map((s) => s.ms - s.wf.totalMs)),
          row('floor total', f),
          row('  startCluster', F.map((s) => s.start)),
          row('  first query (socket)', F.map((s) => s.query)),
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
