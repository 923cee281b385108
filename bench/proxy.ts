/**
 * pgbench -S (select-only) throughput through the Lampion proxy against a direct connection to
 * the compute, with pgbouncer (session mode) in front of the same compute as a peer. One stack,
 * one project, one pgbench data set; the four paths run interleaved, 3 times each, same clients:
 *   (a) direct       pgbench → compute                                 (the floor)
 *   (b) proxy TLS    pgbench → proxy (sslmode=require) → compute        (the product path)
 *   (c) proxy plain  pgbench → proxy (sslmode=disable) → compute        (relay cost without TLS)
 *   (d) pgbouncer    pgbench → pgbouncer (session mode, plaintext) → compute
 *
 *   npm run bench:proxy [-- --reps 3 --duration 10 --clients 8 --threads 2 --scale 10]
 *
 * The stack runs with LAMPION_PROXY_REQUIRE_TLS=false so that (c) is possible; (b) then takes
 * exactly the code path of the default configuration (the flag only decides whether a client
 * that skipped SSLRequest is refused, after which the relay is the same).
 *
 * The proxy runs in this process, so process.cpuUsage() over a run is the proxy's CPU (plus the
 * idle stack's background polling, measured alone at the start and reported as a baseline);
 * pgbouncer's comes from /proc/<pid>/stat. Both are reported as CPU µs per transaction.
 */
import { spawn, ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig } from '../src/config';
import { Stack } from '../src/stack/stack';
import { canConnect, isPortFree } from '../src/engine/ports';
import { generateApiKey } from '../src/domain/apiKeys';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : dflt;
}
const REPS = arg('reps', 3);
const DURATION_S = arg('duration', 10);
const CLIENTS = arg('clients', 8);
const THREADS = arg('threads', 2);
const SCALE = arg('scale', 10);
const WARMUP_S = 3;
/** Hard bound on the whole run; cleanup still happens when it fires. */
const DEADLINE_MS = arg('deadline', 290) * 1000;

const PGBENCH = process.env.PGBENCH ?? 'pgbench';
const PGBOUNCER = process.env.PGBOUNCER ?? findExecutable(['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer']) ?? 'pgbouncer';
const CLK_TCK = 100; // Linux USER_HZ; /proc/<pid>/stat times are in these ticks.

function findExecutable(candidates: string[]): string | undefined {
  return candidates.find((c) => {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

async function freePort(from: number): Promise<number> {
  for (let p = from; p < from + 1000; p++) if (await isPortFree(p)) return p;
  throw new Error('no free port');
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** process.env without libpq's PG* variables, so nothing from the caller's shell leaks into a run. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  return { ...env, ...extra };
}

const children = new Set<ChildProcess>();

function runCommand(file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      children.delete(child);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

interface Target {
  name: string;
  host: string;
  port: number;
  database: string;
  sslmode: 'disable' | 'require';
  /** CPU time (µs) of the process doing the relaying, when there is one. */
  relayCpuUs?: () => number;
}

interface Sample {
  tps: number;
  latencyMs: number;
  relayUsPerTx?: number;
}

async function pgbench(t: Target, password: string, seconds: number): Promise<Sample> {
  const args = ['-S', '-n', '-c', String(CLIENTS), '-j', String(THREADS), '-T', String(seconds), '-h', t.host, '-p', String(t.port), '-U', 'cloud_admin', t.database];
  const env = cleanEnv({ PGPASSWORD: password, PGSSLMODE: t.sslmode, PGCONNECT_TIMEOUT: '10' });
  const cpu0 = t.relayCpuUs?.();
  const res = await runCommand(PGBENCH, args, env, (seconds + 60) * 1000);
  const cpu1 = t.relayCpuUs?.();
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(res.stdout);
  if (res.code !== 0 || !tps) {
    throw new Error(`pgbench on ${t.name} failed (exit ${res.code}):\n${res.stdout}\n${res.stderr}`);
  }
  const lat = /latency average = ([\d.]+) ms/.exec(res.stdout);
  const tx = /number of transactions actually processed: (\d+)/.exec(res.stdout);
  const sample: Sample = { tps: Number(tps[1]), latencyMs: lat ? Number(lat[1]) : NaN };
  if (cpu0 !== undefined && cpu1 !== undefined && tx && Number(tx[1]) > 0) sample.relayUsPerTx = (cpu1 - cpu0) / Number(tx[1]);
  return sample;
}

/** pgbouncer in session mode in front of the compute, in its own temp dir, as a non-root user. */
class Pgbouncer {
  private child?: ChildProcess;
  private pid?: number;
  port = 0;

  constructor(
    private readonly dir: string,
    private readonly osUser: { name: string; uid: number; gid: number } | undefined,
  ) {}

  async start(computePort: number, user: string, password: string): Promise<void> {
    this.port = await freePort(36432);
    const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
    // auth_type=scram-sha-256 with the password in clear in the auth_file (0600, owned by the
    // pgbouncer user, in a 0700 temp dir that is removed at the end): clients authenticate to
    // pgbouncer with SCRAM, and pgbouncer logs into the compute with SCRAM from the same password,
    // as the proxy path does end to end. Authentication only costs at connect time, which
    // pgbench's "tps without initial connection time" leaves out anyway.
    fs.writeFileSync(path.join(this.dir, 'userlist.txt'), `${q(user)} ${q(password)}\n`, { mode: 0o600 });
    const ini = [
      '[databases]',
      `postgres = host=127.0.0.1 port=${computePort} dbname=postgres`,
      '',
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${this.port}`,
      'unix_socket_dir =',
      'auth_type = scram-sha-256',
      `auth_file = ${path.join(this.dir, 'userlist.txt')}`,
      'pool_mode = session',
      `default_pool_size = ${CLIENTS * 2}`,
      'max_client_conn = 200',
      'client_tls_sslmode = disable',
      'server_tls_sslmode = disable',
      `logfile = ${path.join(this.dir, 'pgbouncer.log')}`,
      `pidfile = ${path.join(this.dir, 'pgbouncer.pid')}`,
      'log_connections = 0',
      'log_disconnections = 0',
      '',
    ].join('\n');
    const iniPath = path.join(this.dir, 'pgbouncer.ini');
    fs.writeFileSync(iniPath, ini, { mode: 0o600 });
    if (this.osUser) {
      for (const f of ['', 'userlist.txt', 'pgbouncer.ini']) fs.chownSync(path.join(this.dir, f), this.osUser.uid, this.osUser.gid);
    }
    // pgbouncer refuses to run as root.
    const [file, args] = this.osUser ? ['runuser', ['-u', this.osUser.name, '--', PGBOUNCER, iniPath]] : [PGBOUNCER, [iniPath]];
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv({}) });
    this.child = child;
    children.add(child);
    let output = '';
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    let exited: number | null | undefined;
    child.on('error', (err) => (output += String(err)));
    child.on('close', (code) => {
      exited = code;
      children.delete(child);
    });
    const until = Date.now() + 10_000;
    while (!(await canConnect(this.port))) {
      if (exited !== undefined || Date.now() > until) {
        const log = fs.existsSync(path.join(this.dir, 'pgbouncer.log')) ? fs.readFileSync(path.join(this.dir, 'pgbouncer.log'), 'utf8') : '';
        throw new Error(`pgbouncer did not start (exit ${exited}):\n${output}\n${log.split('\n').slice(-10).join('\n')}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    this.pid = Number(fs.readFileSync(path.join(this.dir, 'pgbouncer.pid'), 'utf8').trim());
  }

  /** utime + stime of the pgbouncer process, in µs. */
  cpuUs(): number {
    const stat = fs.readFileSync(`/proc/${this.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLK_TCK;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    const gone = new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('close', () => r())));
    // runuser passes SIGTERM on to pgbouncer; pgbouncer's own pid is the fallback.
    child.kill('SIGTERM');
    const t = setTimeout(() => {
      if (this.pid) {
        try {
          process.kill(this.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      child.kill('SIGKILL');
    }, 5_000);
    await gone;
    clearTimeout(t);
    this.child = undefined;
  }
}

async function main() {
  const started = Date.now();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lampion-bench-proxy-'));
  fs.chmodSync(dataDir, 0o711);
  const bouncerDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lampion-bench-pgbouncer-'));
  let stack: Stack | undefined;
  let bouncer: Pgbouncer | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      for (const c of children) if (c.exitCode === null && c.signalCode === null && c.spawnfile === PGBENCH) c.kill('SIGKILL');
      await bouncer?.stop().catch((err) => console.error('stopping pgbouncer:', err));
      await stack?.stop().catch((err) => console.error('stopping the stack:', err));
      fs.rmSync(dataDir, { recursive: true, force: true });
      fs.rmSync(bouncerDir, { recursive: true, force: true });
    })());
  const deadline = setTimeout(() => {
    console.error(`bench exceeded ${DEADLINE_MS / 1000}s; cleaning up`);
    cleanup().finally(() => process.exit(2));
  }, DEADLINE_MS);
  deadline.unref();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      cleanup().finally(() => process.exit(130));
    });
  }

  try {
    const key = generateApiKey();
    const config = loadConfig({
      ...process.env,
      LAMPION_DATA_DIR: dataDir,
      LAMPION_API_PORT: '0',
      LAMPION_PROXY_PORT: '0',
      LAMPION_CONTROL_DB_PORT: String(await freePort(35432)),
      LAMPION_TEMPORAL_PORT: String(await freePort(37233)),
      LAMPION_TEMPORAL_UI_PORT: String(await freePort(38233)),
      LAMPION_BOOTSTRAP_API_KEY: key,
      LAMPION_PROXY_REQUIRE_TLS: 'false',
      LOG_LEVEL: 'warn',
    });
    stack = await Stack.start(config, undefined, pino({ level: 'warn' }));
    const api = `http://127.0.0.1:${stack.apiPort}`;
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    const res = await fetch(`${api}/v1/projects`, { method: 'POST', headers, body: JSON.stringify({ name: 'bench-proxy' }) });
    const p: any = await res.json();
    if (res.status !== 201) throw new Error(`create failed: ${res.status} ${JSON.stringify(p)}`);
    const ep = await stack.db.selectFrom('endpoints').select('port').where('id', '=', p.endpoint_id).executeTakeFirstOrThrow();
    const computePort = ep.port!;
    const password: string = p.pg_password;
    if (p.user !== 'cloud_admin') throw new Error(`unexpected user ${p.user}`);
    console.log(`stack up in ${((Date.now() - started) / 1000).toFixed(1)} s; project ${p.id}, endpoint ${p.endpoint_id}, compute 127.0.0.1:${computePort}, proxy ${p.host}:${p.port}`);

    const t0 = Date.now();
    const init = await runCommand(
      PGBENCH,
      ['-i', '-q', '-s', String(SCALE), '-h', '127.0.0.1', '-p', String(computePort), '-U', 'cloud_admin', 'postgres'],
      cleanEnv({ PGPASSWORD: password, PGSSLMODE: 'disable' }),
      180_000,
    );
    if (init.code !== 0) throw new Error(`pgbench -i failed:\n${init.stdout}\n${init.stderr}`);
    console.log(`pgbench -i -s ${SCALE} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    fs.chmodSync(bouncerDir, 0o700);
    bouncer = new Pgbouncer(bouncerDir, stack.engine.pg.user);
    await bouncer.start(computePort, p.user, password);
    const b = bouncer;

    const nodeCpuUs = () => {
      const u = process.cpuUsage();
      return u.user + u.system;
    };
    // Idle CPU of this process (Temporal workers polling, timers): subtracted from nothing, shown
    // so the proxy's µs/tx can be read against it.
    const idle0 = nodeCpuUs();
    await new Promise((r) => setTimeout(r, 2000));
    const idleUsPerS = (nodeCpuUs() - idle0) / 2;

    const targets: Target[] = [
      { name: 'direct', host: '127.0.0.1', port: computePort, database: 'postgres', sslmode: 'disable' },
      { name: 'proxy TLS', host: '127.0.0.1', port: p.port, database: `${p.endpoint_id}.postgres`, sslmode: 'require', relayCpuUs: nodeCpuUs },
      { name: 'proxy plain', host: '127.0.0.1', port: p.port, database: `${p.endpoint_id}.postgres`, sslmode: 'disable', relayCpuUs: nodeCpuUs },
      { name: 'pgbouncer', host: '127.0.0.1', port: b.port, database: 'postgres', sslmode: 'disable', relayCpuUs: () => b.cpuUs() },
    ];

    // Warm-up: caches, backends, TLS, and a check that every path works before measuring.
    for (const t of targets) await pgbench(t, password, WARMUP_S);

    const samples = new Map<string, Sample[]>(targets.map((t) => [t.name, []]));
    for (let rep = 0; rep < REPS; rep++) {
      // Interleaved, and rotated so that no path always runs right after the same one.
      for (let i = 0; i < targets.length; i++) {
        const t = targets[(i + rep) % targets.length];
        const s = await pgbench(t, password, DURATION_S);
        samples.get(t.name)!.push(s);
        const relay = s.relayUsPerTx !== undefined ? `  relay CPU ${s.relayUsPerTx.toFixed(1)} µs/tx` : '';
        console.log(`  rep ${rep + 1}  ${t.name.padEnd(12)} ${s.tps.toFixed(0).padStart(7)} tps  ${s.latencyMs.toFixed(3)} ms${relay}`);
      }
    }

    const med = (name: string) => median(samples.get(name)!.map((s) => s.tps));
    const medRelay = (name: string) => {
      const xs = samples.get(name)!.flatMap((s) => (s.relayUsPerTx === undefined ? [] : [s.relayUsPerTx]));
      return xs.length ? `${median(xs).toFixed(1)} µs/tx` : '';
    };
    const direct = med('direct');
    console.log('');
    console.log(`pgbench -S -n -c ${CLIENTS} -j ${THREADS} -T ${DURATION_S}, scale ${SCALE}, ${REPS} interleaved reps, ${os.cpus().length} CPUs`);
    console.log(`  ${'path'.padEnd(40)} ${'median tps'.padStart(10)}  ${'vs direct'.padStart(9)}  relay CPU (median)`);
    const rows: [string, string][] = [
      ['direct', 'direct (pgbench → compute)'],
      ['proxy TLS', 'proxy, TLS (sslmode=require)'],
      ['proxy plain', 'proxy, plaintext (sslmode=disable)'],
      ['pgbouncer', 'pgbouncer, session mode, plaintext'],
    ];
    for (const [name, label] of rows) {
      const m = med(name);
      console.log(`  ${label.padEnd(40)} ${m.toFixed(0).padStart(10)}  ${(m / direct).toFixed(2).padStart(9)}  ${medRelay(name)}`);
    }
    console.log('');
    console.log(`  proxy-TLS / direct        ${(med('proxy TLS') / direct).toFixed(2)}  (target ≥ 0.90)`);
    console.log(`  proxy-plain / direct      ${(med('proxy plain') / direct).toFixed(2)}  (target ≥ 0.90)`);
    console.log(`  pgbouncer / direct        ${(med('pgbouncer') / direct).toFixed(2)}`);
    console.log(`  proxy-plain / pgbouncer   ${(med('proxy plain') / med('pgbouncer')).toFixed(2)}`);
    console.log(`  (node process idle CPU: ${(idleUsPerS / 1000).toFixed(1)} ms/s, included in the proxy's µs/tx)`);
  } finally {
    await cleanup();
    clearTimeout(deadline);
    console.log(`total ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
