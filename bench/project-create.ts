/**
 * Project creation, API call → first successful query through the proxy, against the raw floor
 * measured in the same run: initdb + postgres start + first query, without Temporal, API or proxy.
 *   npm run bench:project-create -- --runs 10
 */
import fs from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { createDataDir, removeDataDir } from '../src/engine/storage';
import { initCluster, startCluster, stopCluster, writeRuntimeConf, withSystemClient } from '../src/engine/cluster';
import { ensureOwnedDir } from '../src/engine/fs';
import { argNumber, fmtMs as fmt, freePort, median, quantile, startBenchStack } from './support';

const runs = argNumber('runs', 10);

async function main() {
  const b = await startBenchStack();
  const { ca, api, headers } = b;
  const engine = b.stack.engine;
  const pg = engine.pgs.newest;

  async function viaApi(i: number): Promise<number> {
    const t0 = performance.now();
    const res = await fetch(`${api}/v1/projects`, { method: 'POST', headers, body: JSON.stringify({ name: `bench-${i}` }) });
    const p: any = await res.json();
    if (res.status !== 201) throw new Error(`create failed: ${res.status} ${JSON.stringify(p)}`);
    const c = new Client({ host: p.host, port: p.port, user: p.user, password: p.pg_password, database: `${p.endpoint_id}.postgres`, ssl: { ca } });
    await c.connect();
    await c.query('SELECT 1');
    const ms = performance.now() - t0;
    await c.end();
    await fetch(`${api}/v1/projects/${p.id}`, { method: 'DELETE', headers });
    return ms;
  }

  async function floor(i: number): Promise<number> {
    const dir = path.join(engine.layout.branchesDir, `floor-${i}`);
    const sock = path.join(engine.layout.endpointsDir, `floor-${i}`);
    const port = await freePort(46000);
    await ensureOwnedDir(sock, pg.user);
    const t0 = performance.now();
    await createDataDir(dir, await engine.driver(), pg.user);
    await initCluster(pg, dir);
    await writeRuntimeConf(pg, dir, { port, socketDir: sock, walArchiveDir: sock });
    await startCluster(pg, dir, path.join(sock, 'log'));
    await withSystemClient(sock, port, (c) => c.query('SELECT 1'));
    const ms = performance.now() - t0;
    await stopCluster(pg, dir);
    await removeDataDir(dir);
    fs.rmSync(sock, { recursive: true, force: true });
    return ms;
  }

  try {
    await viaApi(-1); // warm-up: workflow cache, TLS, first connections
    await floor(-1);
    const a: number[] = [];
    const f: number[] = [];
    for (let i = 0; i < runs; i++) {
      // Interleaved, so drift on the machine hits both sides alike.
      a.push(await viaApi(i));
      f.push(await floor(i));
    }
    const ratio = median(a) / median(f);
    console.log(`project-create  runs=${runs}  driver=${await engine.driver()}`);
    console.log(`  lampion (API → first query via proxy)  median ${fmt(median(a))}  p95 ${fmt(quantile(a, 0.95))}`);
    console.log(`  raw floor (initdb + start + query)     median ${fmt(median(f))}  p95 ${fmt(quantile(f, 0.95))}`);
    console.log(`  ratio (median)                         ${ratio.toFixed(2)}  (target ≤ 1.5)`);
  } finally {
    await b.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
