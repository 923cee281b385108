/**
 * Database import throughput: POST /v1/projects/{id}/import/start → the import ready (a new
 * branch: its cluster, its compute, pg_dump | psql through the host's tunnel and byte counter),
 * against a plain shell `pg_dump | psql` between the same source server and the same kind of
 * target (a fresh compute of the same project, size and major, made by an untimed import of an
 * empty database), alternating, in one run. Prints medians, MB/s and the ratio; also the load step alone (the loadSourceDump
 * activity, from the workflow history), which leaves out making the branch.
 *
 *   npm run bench:import -- [--runs 5] [--scale 30] [--cu 2] [--source 18|15] [--tls]
 *
 * The source is a Postgres started by the bench (18: the embedded build; 15: Debian's), filled by
 * pgbench -i -s <scale> as a non-superuser owner. --tls (15 only) makes it TLS-only: the import
 * goes through the tunnel, the shell through libpq's own TLS (sslmode=require).
 */
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { run } from '../src/engine/exec';
import { PgInstall, pgBin, startCluster, stopCluster } from '../src/engine/cluster';
import { ensureOwnedDir } from '../src/engine/fs';
import { USER_ROLE } from '../src/domain/roles';
import { argNumber, argList, freePort, machineLoad, median, quantile, startBenchStack, table, workflowTimings, expectStatus } from './support';

const RUNS = argNumber('runs', 5);
const SCALE = argNumber('scale', 30);
const CU = argNumber('cu', 2);
const SOURCE_MAJOR = Number(argList('source', ['18'])[0]);
const TLS = process.argv.includes('--tls');
const OWNER = 'bench_owner';
const OWNER_PW = 'bench-owner-pw';

const startedAt = performance.now();
const log = (msg: string) => process.stderr.write(`[import ${((performance.now() - startedAt) / 1000).toFixed(0)}s] ${msg}\n`);

function runCommand(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out = (out + d).slice(-8192)));
    child.stderr.on('data', (d) => (out = (out + d).slice(-8192)));
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

interface Source {
  pg: PgInstall;
  port: number;
  stop(): Promise<void>;
}

/** A Postgres outside Lampion on 127.0.0.1, run as the compute user; TLS-only with `tls`. */
async function startSource(pg: PgInstall, tls: boolean): Promise<Source> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lampion-bench-import-src-'));
  fs.chmodSync(root, 0o711);
  const dataDir = path.join(root, 'data');
  const logDir = path.join(root, 'log');
  for (const d of [dataDir, logDir]) await ensureOwnedDir(d, pg.user);
  await run(pgBin(pg, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync', '--no-instructions'], { user: pg.user });
  const port = await freePort(45432);
  const conf = [`listen_addresses = '127.0.0.1'`, `port = ${port}`, `unix_socket_directories = '${dataDir}'`, `shared_buffers = '256MB'`, `password_encryption = 'scram-sha-256'`];
  if (tls) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', path.join(dataDir, 'server.key'), '-out', path.join(dataDir, 'server.crt'), '-subj', '/CN=bench-source', '-days', '2'], { stdio: 'ignore' });
    for (const f of ['server.key', 'server.crt']) {
      fs.chmodSync(path.join(dataDir, f), 0o600);
      if (pg.user) fs.chownSync(path.join(dataDir, f), pg.user.uid, pg.user.gid);
    }
    conf.push('ssl = on');
  }
  fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), `\n${conf.join('\n')}\n`);
  fs.writeFileSync(path.join(dataDir, 'pg_hba.conf'), `local all all trust\n${tls ? 'hostssl' : 'host'} all all 127.0.0.1/32 scram-sha-256\n`);
  await startCluster(pg, dataDir, path.join(logDir, 'postgres.log'));
  const admin = async (sql: string, db = 'postgres') => {
    const c = new Client({ host: dataDir, port, user: 'postgres', database: db });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE ROLE ${OWNER} LOGIN PASSWORD '${OWNER_PW}'`);
  await admin(`CREATE DATABASE bench OWNER ${OWNER}`);
  await admin(`CREATE DATABASE empty OWNER ${OWNER}`);
  const t0 = performance.now();
  const fill = await runCommand(pgBin(pg, 'pgbench'), ['-i', '-q', '-s', String(SCALE), '-h', dataDir, '-p', String(port), '-U', OWNER, 'bench'], pgEnv({}));
  if (fill.code !== 0) throw new Error(`pgbench -i failed: ${fill.out}`);
  await admin('VACUUM ANALYZE', 'bench');
  log(`source: PostgreSQL ${pg.major}${tls ? ' (TLS only)' : ''} on 127.0.0.1:${port}, pgbench -i -s ${SCALE} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return {
    pg,
    port,
    async stop() {
      await stopCluster(pg, dataDir, 'immediate').catch(() => undefined);
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

async function main() {
  const loadBefore = machineLoad();
  const b = await startBenchStack({ prefix: 'lampion-bench-import-' });
  let source: Source | undefined;
  try {
    const pgs = b.stack.engine.pgs;
    if (TLS && SOURCE_MAJOR !== 15) throw new Error('--tls needs --source 15 (the 18 build has no TLS)');
    source = await startSource(pgs.get(SOURCE_MAJOR), TLS);
    // The target's own client tools: what the import uses (and the only ones with TLS for --tls).
    const tools = pgs.get(SOURCE_MAJOR);
    const params = TLS ? '?sslmode=require' : '';
    const dsn = (db: string) => `postgresql://${OWNER}:${OWNER_PW}@127.0.0.1:${source!.port}/${db}${params}`;

    const project = await expectStatus(b, 'POST', '/v1/projects', { name: 'import-bench', pg_version: SOURCE_MAJOR }, [201]);
    const base = `/v1/projects/${project.id}`;
    // Imported branches take the primary's size and auto-suspend.
    await expectStatus(b, 'PATCH', `${base}/endpoints/${project.endpoint_id}`, { auto_suspend_seconds: 0, compute_cu: CU }, [200]);

    // The end of an import, seen through the API once its workflow has ended: a client polling
    // GET …/import/{id} every few ms would only steal the CPU the import needs from the 2 cores.
    const waitReady = async (branchId: string) => {
      await b.stack.temporal.workflow.getHandle(`branch/${branchId}`).result().catch(() => undefined);
      const s = await expectStatus(b, 'GET', `${base}/import/${branchId}`, undefined, [200]);
      if (s.status !== 'ready') throw new Error(`import ${branchId} ended ${s.status}: ${JSON.stringify(s.error)}`);
      return s;
    };

    // The shell's target for each run: a compute made the way an import makes one (a new branch
    // with a fresh cluster, imported from an empty database; not timed), same size and major. A
    // fresh cluster writes all its WAL into new segments; a compute that ran loads before would
    // recycle old ones, which no import ever gets.
    async function freshTarget(name: string) {
      const t = await expectStatus(b, 'POST', `${base}/import/start`, { source_dsn: dsn('empty'), branch_name: name }, [202]);
      await waitReady(t.branch_id);
      const ep = await expectStatus(b, 'GET', `${base}/endpoints/${t.compute_id}`, undefined, [200]);
      return { branchId: t.branch_id as string, port: ep.pg_port as number, password: ep.pg_password as string };
    }

    const api: { ms: number; loadMs: number; bytes: number }[] = [];
    const shell: { ms: number }[] = [];
    let dumpBytes = 0;

    async function viaApi(i: number) {
      const t0 = performance.now();
      const started = await expectStatus(b, 'POST', `${base}/import/start`, { source_dsn: dsn('bench'), branch_name: `run-${i}` }, [202]);
      const done = await waitReady(started.branch_id);
      const ms = performance.now() - t0;
      const wf = await workflowTimings(b.stack, `branch/${started.branch_id}`);
      const loadMs = wf.activities.filter((a) => a.name === 'loadSourceDump').reduce((x, a) => x + a.runMs, 0);
      dumpBytes = done.result.bytes;
      api.push({ ms, loadMs, bytes: done.result.bytes });
      const steps = wf.activities.map((a) => `${a.name} ${Math.round(a.queueMs + a.runMs)}`).join(', ');
      log(`api #${i}: ${(ms / 1000).toFixed(2)} s end to end, load ${(loadMs / 1000).toFixed(2)} s, ${(done.result.bytes / 1e6).toFixed(0)} MB; workflow ${Math.round(wf.totalMs)} ms (ms per activity, queue + run: ${steps})`);
      await expectStatus(b, 'DELETE', `${base}/branches/${started.branch_id}`, undefined, [202, 204]);
    }

    async function viaShell(i: number) {
      const target = await freshTarget(`shell-${i}`);
      // Same pg_dump options as the import's (no owners, no grants), straight from the source
      // into the compute's port; libpq's own TLS where the source needs it.
      const script = `"$1" --format=plain --no-owner --no-privileges --no-publications --no-subscriptions --no-security-labels --no-tablespaces -d "$2" | PGPASSWORD="$4" "$3" -X -q -v ON_ERROR_STOP=1 -o /dev/null -h 127.0.0.1 -p "$5" -U "$6" -d postgres`;
      const t0 = performance.now();
      const r = await runCommand('bash', ['-o', 'pipefail', '-c', script, 'shell', pgBin(tools, 'pg_dump'), dsn('bench'), pgBin(tools, 'psql'), target.password, String(target.port), USER_ROLE], pgEnv({}));
      const ms = performance.now() - t0;
      if (r.code !== 0) throw new Error(`shell pg_dump | psql failed (${r.code}): ${r.out}`);
      shell.push({ ms });
      log(`shell #${i}: ${(ms / 1000).toFixed(2)} s`);
      await expectStatus(b, 'DELETE', `${base}/branches/${target.branchId}`, undefined, [202, 204]);
    }

    // One of each first, unmeasured: the source's pages in its cache for both.
    log('warm-up');
    await viaShell(0);
    await viaApi(0);
    api.length = 0;
    shell.length = 0;
    for (let i = 1; i <= RUNS; i++) {
      if (i % 2) {
        await viaApi(i);
        await viaShell(i);
      } else {
        await viaShell(i);
        await viaApi(i);
      }
    }

    const mb = dumpBytes / 1e6;
    const rate = (ms: number) => mb / (ms / 1000);
    const apiMs = api.map((s) => s.ms);
    const loadMs = api.map((s) => s.loadMs);
    const shellMs = shell.map((s) => s.ms);
    console.log(`\nDatabase import, PostgreSQL ${SOURCE_MAJOR} source${TLS ? ' (TLS only)' : ''} → ${SOURCE_MAJOR} project at ${CU} CU; pgbench scale ${SCALE}, dump ${mb.toFixed(0)} MB; ${RUNS} runs each, alternating`);
    console.log(`${loadBefore} at start; ${machineLoad()} at end\n`);
    console.log(
      table(
        ['path', 'median', 'p95', 'MB/s (median)'],
        [
          ['Lampion: POST import/start → ready (new branch + load)', `${(median(apiMs) / 1000).toFixed(2)} s`, `${(quantile(apiMs, 0.95) / 1000).toFixed(2)} s`, rate(median(apiMs)).toFixed(1)],
          ['  of which the load (loadSourceDump)', `${(median(loadMs) / 1000).toFixed(2)} s`, `${(quantile(loadMs, 0.95) / 1000).toFixed(2)} s`, rate(median(loadMs)).toFixed(1)],
          ['shell: pg_dump | psql into a fresh compute', `${(median(shellMs) / 1000).toFixed(2)} s`, `${(quantile(shellMs, 0.95) / 1000).toFixed(2)} s`, rate(median(shellMs)).toFixed(1)],
        ],
      ),
    );
    console.log(`\nratio Lampion ÷ shell (MB/s): end to end ${(median(shellMs) / median(apiMs)).toFixed(2)}, load step alone ${(median(shellMs) / median(loadMs)).toFixed(2)} (target ≥ 0.9)`);
  } finally {
    await source?.stop();
    await b.stop();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
