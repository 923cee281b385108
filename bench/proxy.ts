/**
 * pgbench -S (select-only) throughput through the Lampion proxy against a direct connection to
 * the compute, with pgbouncer (session mode) in front of the same compute as a peer. One stack,
 * one project, one pgbench data set; the paths run interleaved, REPS times each, same clients:
 *   direct          pgbench → compute                                  (the floor)
 *   direct TLS      pgbench → compute with ssl=on (sslmode=require)     (the floor for TLS paths:
 *                   the client's own encryption is not the relay's cost)
 *   proxy TLS       pgbench → proxy (sslmode=require) → compute         (the product path)
 *   proxy plain     pgbench → proxy (sslmode=disable) → compute         (relay cost without TLS)
 *   pgbouncer       pgbench → pgbouncer (session mode, plaintext) → compute
 *   pgbouncer TLS   pgbench → pgbouncer (session mode, sslmode=require) → compute
 *                   (what terminating TLS costs a C relay: the yardstick for "proxy TLS")
 *
 *   npm run bench:proxy [-- --reps 3 --duration 10 --clients 8 --threads 2 --scale 10 --cu 2]
 *
 * The stack runs with LAMPION_PROXY_REQUIRE_TLS=false so that "proxy plain" is possible;
 * "proxy TLS" then takes exactly the code path of the default configuration (the flag only
 * decides whether a client that skipped SSLRequest is refused; the relay is the same).
 *
 * The compute is resized (PATCH compute_cu) to the smallest tier with at least as many vCPUs as
 * the host, and auto-suspend is turned off: at the default 0.25 CU the compute's cgroup quota,
 * not the relay, would bound every path, and a suspend mid-run would end the bench.
 *
 * Besides TPS, each run records CPU time per transaction of every party: pgbench (the client),
 * the compute (postmaster and all its children), and the relay (this process for the proxy,
 * which runs in-process; pgbouncer's process for pgbouncer). On a host where client, relay and
 * compute share the CPUs, TPS ≈ CPUs / total CPU per transaction, so these columns say where
 * the time goes, and stay meaningful when other work on the machine makes TPS noisy ("other"
 * is the rest of the machine's busy time during the run, in % of all CPUs).
 */
import { spawn, ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { canConnect } from '../src/engine/ports';
import { CU_TIERS } from '../src/domain/sizing';
import { withSystemClient } from '../src/engine/cluster';
import { BenchStack, freePort, median, startBenchStack } from './support';

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
const CPUS = os.cpus().length;
const COMPUTE_CU = arg('cu', CU_TIERS.find((cu) => cu >= CPUS) ?? CU_TIERS[CU_TIERS.length - 1]);
const WARMUP_S = 2;
/** Hard bound on the whole run; cleanup still happens when it fires. */
const DEADLINE_MS = arg('deadline', 420) * 1000;

const PGBENCH = process.env.PGBENCH ?? 'pgbench';
const PGBOUNCER = process.env.PGBOUNCER ?? ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'].find(isExecutable) ?? 'pgbouncer';
const CLK_TCK = 100; // Linux USER_HZ: the unit of /proc/<pid>/stat and /proc/stat times.

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** process.env without libpq's PG* variables, so nothing from the caller's shell leaks into a run. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  return { ...env, ...extra };
}

// ---- CPU accounting from /proc -------------------------------------------------------------

/** Fields of /proc/<pid>/stat after the command name: [0] = state, [1] = ppid, [11..14] = utime stime cutime cstime. */
function procStat(pid: number): string[] | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** CPU µs of a process itself (withChildren: plus its reaped children). */
function processCpuUs(pid: number, withChildren = false): number {
  const f = procStat(pid);
  if (!f) return 0;
  const ticks = Number(f[11]) + Number(f[12]) + (withChildren ? Number(f[13]) + Number(f[14]) : 0);
  return (ticks * 1e6) / CLK_TCK;
}

function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const f = procStat(Number(e));
    if (f && Number(f[1]) === ppid) out.push(Number(e));
  }
  return out;
}

/** A postgres instance's CPU: postmaster, live children (backends, background processes), reaped children. */
function postgresCpuUs(postmaster: number): { us: number; children: number } {
  const kids = childrenOf(postmaster);
  return { us: processCpuUs(postmaster, true) + kids.reduce((a, k) => a + processCpuUs(k), 0), children: kids.length };
}

/**
 * Machine-wide CPU µs spent in processes (user + nice + system), and stolen by the hypervisor.
 * irq/softirq time is left out: it is mostly our own loopback traffic, charged to no process.
 */
function machineCpuUs(): { busy: number; steal: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , , , steal] = f;
  return { busy: ((user + nice + system) * 1e6) / CLK_TCK, steal: ((steal ?? 0) * 1e6) / CLK_TCK };
}

function nodeCpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

// ---- child processes -----------------------------------------------------------------------

const children = new Set<ChildProcess>();

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}

function runCommand(file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // Its own process group, so that a timeout or cleanup ends pgbench too, not only bash.
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => killGroup(child), timeoutMs);
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
  label: string;
  host: string;
  port: number;
  database: string;
  sslmode: 'disable' | 'require';
  /** CPU µs of the process doing the relaying, when there is one. */
  relayCpuUs?: () => number;
}

interface Sample {
  tps: number;
  latencyMs: number;
  /** CPU µs per transaction. */
  clientUs: number;
  computeUs: number;
  relayUs?: number;
  /** Busy CPU of everything else on the machine during the run, % of all CPUs. */
  otherPct: number;
  /** CPU stolen by the hypervisor during the run, % of all CPUs. */
  stealPct: number;
}

class Bench {
  constructor(
    private readonly password: string,
    private readonly postmaster: number,
  ) {}

  async run(t: Target, seconds: number): Promise<Sample> {
    const args = ['-S', '-n', '-c', String(CLIENTS), '-j', String(THREADS), '-T', String(seconds), '-h', t.host, '-p', String(t.port), '-U', 'cloud_admin', t.database];
    const env = cleanEnv({ PGPASSWORD: this.password, PGSSLMODE: t.sslmode, PGCONNECT_TIMEOUT: '10', LAMPION_PGBENCH: PGBENCH });
    // bash's `times` reports the CPU of its reaped children, i.e. of pgbench.
    const script = '"$LAMPION_PGBENCH" "$@"; rc=$?; times >&2; exit $rc';
    const baselineKids = childrenOf(this.postmaster).length;
    const m0 = machineCpuUs();
    const n0 = nodeCpuUs();
    const c0 = postgresCpuUs(this.postmaster).us;
    const r0 = t.relayCpuUs?.();
    const res = await runCommand('bash', ['-c', script, 'pgbench', ...args], env, (seconds + 60) * 1000);
    const r1 = t.relayCpuUs?.();
    // Let the run's backends exit and be reaped, so their CPU shows in the postmaster's cutime.
    for (let i = 0; i < 40 && childrenOf(this.postmaster).length > baselineKids; i++) await sleep(50);
    const c1 = postgresCpuUs(this.postmaster).us;
    const n1 = nodeCpuUs();
    const m1 = machineCpuUs();

    const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(res.stdout);
    const txm = /number of transactions actually processed: (\d+)/.exec(res.stdout);
    if (res.code !== 0 || !tps || !txm) {
      throw new Error(`pgbench on ${t.name} failed (exit ${res.code}):\n${res.stdout}\n${res.stderr}`);
    }
    const tx = Number(txm[1]);
    const lat = /latency average = ([\d.]+) ms/.exec(res.stdout);
    const times = [...res.stderr.matchAll(/(\d+)m([\d.]+)s (\d+)m([\d.]+)s/g)].pop();
    const clientCpu = times ? (Number(times[1]) * 60 + Number(times[2]) + Number(times[3]) * 60 + Number(times[4])) * 1e6 : NaN;
    const relayCpu = r0 !== undefined && r1 !== undefined ? r1 - r0 : undefined;
    // The relay is either this process (proxy) or pgbouncer; this process's own CPU is counted once.
    const ours = clientCpu + (c1 - c0) + (n1 - n0) + (relayCpu !== undefined && t.relayCpuUs !== nodeCpuUs ? relayCpu : 0);
    const elapsedUs = seconds * 1e6;
    return {
      tps: Number(tps[1]),
      latencyMs: lat ? Number(lat[1]) : NaN,
      clientUs: clientCpu / tx,
      computeUs: (c1 - c0) / tx,
      relayUs: relayCpu !== undefined ? relayCpu / tx : undefined,
      otherPct: Math.max(0, (100 * (m1.busy - m0.busy - ours)) / (elapsedUs * CPUS)),
      stealPct: (100 * (m1.steal - m0.steal)) / (elapsedUs * CPUS),
    };
  }
}

// ---- pgbouncer -----------------------------------------------------------------------------

/** pgbouncer in session mode in front of the compute, in its own temp dir, as a non-root user. */
class Pgbouncer {
  private child?: ChildProcess;
  private pid?: number;
  port = 0;

  constructor(
    private readonly dir: string,
    private readonly osUser: { name: string; uid: number; gid: number } | undefined,
  ) {}

  async start(computePort: number, user: string, password: string, tlsDir: string): Promise<void> {
    this.port = await freePort(36432);
    const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
    const file = (name: string) => path.join(this.dir, name);
    // auth_type=scram-sha-256 with the password in clear in the auth_file (0600, owned by the
    // pgbouncer user, in a 0700 temp dir removed at the end): clients authenticate to pgbouncer
    // with SCRAM, and pgbouncer logs into the compute with SCRAM from the same password, as the
    // proxy path does end to end. Authentication only costs at connect time, which pgbench's
    // "tps without initial connection time" leaves out anyway.
    fs.writeFileSync(file('userlist.txt'), `${q(user)} ${q(password)}\n`, { mode: 0o600 });
    // The proxy's self-signed pair, for the TLS peer; `allow` also accepts plaintext clients.
    fs.copyFileSync(path.join(tlsDir, 'proxy.crt'), file('server.crt'));
    fs.copyFileSync(path.join(tlsDir, 'proxy.key'), file('server.key'));
    fs.chmodSync(file('server.key'), 0o600);
    const ini = [
      '[databases]',
      `postgres = host=127.0.0.1 port=${computePort} dbname=postgres`,
      '',
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${this.port}`,
      'unix_socket_dir =',
      'auth_type = scram-sha-256',
      `auth_file = ${file('userlist.txt')}`,
      'pool_mode = session',
      `default_pool_size = ${CLIENTS * 2}`,
      'max_client_conn = 200',
      'client_tls_sslmode = allow',
      `client_tls_cert_file = ${file('server.crt')}`,
      `client_tls_key_file = ${file('server.key')}`,
      'server_tls_sslmode = disable',
      `logfile = ${file('pgbouncer.log')}`,
      `pidfile = ${file('pgbouncer.pid')}`,
      'log_connections = 0',
      'log_disconnections = 0',
      '',
    ].join('\n');
    fs.writeFileSync(file('pgbouncer.ini'), ini, { mode: 0o600 });
    if (this.osUser) {
      for (const f of ['', 'userlist.txt', 'pgbouncer.ini', 'server.crt', 'server.key']) fs.chownSync(file(f), this.osUser.uid, this.osUser.gid);
    }
    // pgbouncer refuses to run as root.
    const [cmd, args] = this.osUser ? ['runuser', ['-u', this.osUser.name, '--', PGBOUNCER, file('pgbouncer.ini')]] : [PGBOUNCER, [file('pgbouncer.ini')]];
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv({}) });
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
    while (!(await canConnect(this.port)) || !fs.existsSync(file('pgbouncer.pid'))) {
      if (exited !== undefined || Date.now() > until) {
        const log = fs.existsSync(file('pgbouncer.log')) ? fs.readFileSync(file('pgbouncer.log'), 'utf8') : '';
        throw new Error(`pgbouncer did not start (exit ${exited}):\n${output}\n${log.split('\n').slice(-10).join('\n')}`);
      }
      await sleep(50);
    }
    this.pid = Number(fs.readFileSync(file('pgbouncer.pid'), 'utf8').trim());
  }

  cpuUs(): number {
    return this.pid ? processCpuUs(this.pid) : NaN;
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

/**
 * Turns on TLS in the bench's compute with the proxy's own pair, so "direct TLS" measures what
 * encryption costs the same clients without a relay. Only this bench's compute is changed.
 */
async function enableComputeTls(stack: BenchStack['stack'], endpointId: string, branchId: string, port: number, tlsDir: string): Promise<void> {
  const dataDir = stack.engine.layout.branchDataDir(branchId);
  const user = stack.engine.pgs.user;
  const socketDir = stack.engine.layout.socketDir(endpointId);
  const files = { cert: path.join(dataDir, 'bench-server.crt'), key: path.join(dataDir, 'bench-server.key') };
  fs.copyFileSync(path.join(tlsDir, 'proxy.crt'), files.cert);
  fs.copyFileSync(path.join(tlsDir, 'proxy.key'), files.key);
  fs.chmodSync(files.key, 0o600);
  if (user) for (const f of Object.values(files)) fs.chownSync(f, user.uid, user.gid);
  await withSystemClient(socketDir, port, async (c) => {
    await c.query(`ALTER SYSTEM SET ssl_cert_file = '${files.cert.replace(/'/g, "''")}'`);
    await c.query(`ALTER SYSTEM SET ssl_key_file = '${files.key.replace(/'/g, "''")}'`);
    await c.query('ALTER SYSTEM SET ssl = on');
    await c.query('SELECT pg_reload_conf()');
  });
  const until = Date.now() + 10_000;
  for (;;) {
    const on = await withSystemClient(socketDir, port, async (c) => (await c.query('SHOW ssl')).rows[0].ssl);
    if (on === 'on') return;
    if (Date.now() > until) throw new Error('the compute did not turn TLS on');
    await sleep(100);
  }
}

// ---- main ----------------------------------------------------------------------------------

async function main() {
  const started = Date.now();
  const bouncerDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lampion-bench-pgbouncer-'));
  let benchStack: BenchStack | undefined;
  let bouncer: Pgbouncer | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      for (const c of children) if (c.spawnfile !== 'runuser' && c.spawnfile !== PGBOUNCER) killGroup(c);
      await bouncer?.stop().catch((err) => console.error('stopping pgbouncer:', err));
      await benchStack?.stop().catch((err) => console.error('stopping the stack:', err));
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
    benchStack = await startBenchStack({ prefix: 'lampion-bench-proxy-', env: { LAMPION_PROXY_REQUIRE_TLS: 'false', LOG_LEVEL: 'error' } });
    const { stack, api, headers } = benchStack;
    const res = await fetch(`${api}/v1/projects`, { method: 'POST', headers, body: JSON.stringify({ name: 'bench-proxy' }) });
    const p: any = await res.json();
    if (res.status !== 201) throw new Error(`create failed: ${res.status} ${JSON.stringify(p)}`);
    if (p.user !== 'cloud_admin') throw new Error(`unexpected user ${p.user}`);
    const patch = await fetch(`${api}/v1/projects/${p.id}/endpoints/${p.endpoint_id}`, {
      method: 'PATCH',
      headers,
      body: JSON.stringify({ auto_suspend_seconds: 0, compute_cu: COMPUTE_CU }),
    });
    if (patch.status !== 200) throw new Error(`resize failed: ${patch.status} ${await patch.text()}`);
    const ep = await stack.db.selectFrom('endpoints').select(['port', 'status']).where('id', '=', p.endpoint_id).executeTakeFirstOrThrow();
    if (ep.status !== 'running' || ep.port === null) throw new Error(`endpoint is ${ep.status}`);
    const computePort = ep.port;
    const password: string = p.pg_password;
    const limits = stack.engine.limiter.enforced ? `cgroup ${stack.engine.limiter.version} limits enforced` : 'cgroup limits not enforced';
    console.log(`stack up in ${((Date.now() - started) / 1000).toFixed(1)} s; endpoint ${p.endpoint_id} at ${COMPUTE_CU} CU (${limits}), compute 127.0.0.1:${computePort}, proxy ${p.host}:${p.port}`);

    // The postmaster, from a background process only it can have started.
    const pgc = new Client({ host: '127.0.0.1', port: computePort, user: p.user, password, database: 'postgres' });
    await pgc.connect();
    const bg = await pgc.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'`);
    await pgc.end();
    const postmaster = Number(procStat(bg.rows[0].pid)?.[1]);
    if (!postmaster) throw new Error('could not find the compute postmaster');

    const t0 = Date.now();
    const init = await runCommand(
      PGBENCH,
      ['-i', '-q', '-s', String(SCALE), '-h', '127.0.0.1', '-p', String(computePort), '-U', 'cloud_admin', 'postgres'],
      cleanEnv({ PGPASSWORD: password, PGSSLMODE: 'disable' }),
      180_000,
    );
    if (init.code !== 0) throw new Error(`pgbench -i failed:\n${init.stdout}\n${init.stderr}`);
    console.log(`pgbench -i -s ${SCALE} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    await enableComputeTls(stack, p.endpoint_id, p.branch_id, computePort, path.join(benchStack.dataDir, 'tls'));

    fs.chmodSync(bouncerDir, 0o700);
    bouncer = new Pgbouncer(bouncerDir, stack.engine.pgs.user);
    await bouncer.start(computePort, p.user, password, path.join(benchStack.dataDir, 'tls'));
    const b = bouncer;

    const idle0 = nodeCpuUs();
    await sleep(1000);
    const idleMsPerS = (nodeCpuUs() - idle0) / 1000;

    const proxyDb = `${p.endpoint_id}.postgres`;
    const targets: Target[] = [
      { name: 'direct', label: 'direct (pgbench → compute)', host: '127.0.0.1', port: computePort, database: 'postgres', sslmode: 'disable' },
      { name: 'direct TLS', label: 'direct, TLS (compute ssl=on)', host: '127.0.0.1', port: computePort, database: 'postgres', sslmode: 'require' },
      { name: 'proxy TLS', label: 'proxy, TLS (sslmode=require)', host: '127.0.0.1', port: p.port, database: proxyDb, sslmode: 'require', relayCpuUs: nodeCpuUs },
      { name: 'proxy plain', label: 'proxy, plaintext (sslmode=disable)', host: '127.0.0.1', port: p.port, database: proxyDb, sslmode: 'disable', relayCpuUs: nodeCpuUs },
      { name: 'pgbouncer', label: 'pgbouncer session, plaintext', host: '127.0.0.1', port: b.port, database: 'postgres', sslmode: 'disable', relayCpuUs: () => b.cpuUs() },
      { name: 'pgbouncer TLS', label: 'pgbouncer session, TLS (require)', host: '127.0.0.1', port: b.port, database: 'postgres', sslmode: 'require', relayCpuUs: () => b.cpuUs() },
    ];
    const bench = new Bench(password, postmaster);

    // Warm-up: caches, backends, TLS, and a check that every path works before measuring.
    for (const t of targets) await bench.run(t, WARMUP_S);

    const f1 = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '   -' : x.toFixed(1).padStart(5));
    const samples = new Map<string, Sample[]>(targets.map((t) => [t.name, []]));
    console.log(`  ${''.padEnd(6)} ${'path'.padEnd(14)} ${'tps'.padStart(7)}  ${'latency'.padStart(8)}   CPU µs/tx: client compute relay  other load, steal`);
    for (let rep = 0; rep < REPS; rep++) {
      // Interleaved, and rotated so that no path always runs right after the same one.
      for (let i = 0; i < targets.length; i++) {
        const t = targets[(i + rep) % targets.length];
        const s = await bench.run(t, DURATION_S);
        samples.get(t.name)!.push(s);
        console.log(
          `  rep ${rep + 1}  ${t.name.padEnd(14)} ${s.tps.toFixed(0).padStart(7)}  ${s.latencyMs.toFixed(3).padStart(5)} ms   ${''.padEnd(10)}${f1(s.clientUs)} ${f1(s.computeUs).padStart(7)} ${f1(s.relayUs)}  ${s.otherPct.toFixed(0).padStart(5)}%, ${s.stealPct.toFixed(0)}%`,
        );
      }
    }

    const med = (name: string, pick: (s: Sample) => number | undefined = (s) => s.tps) => {
      const xs = samples.get(name)!.map(pick).filter((x): x is number => x !== undefined && !Number.isNaN(x));
      return xs.length ? median(xs) : undefined;
    };
    const direct = med('direct')!;
    const total = (name: string) => (med(name, (s) => s.clientUs) ?? 0) + (med(name, (s) => s.computeUs) ?? 0) + (med(name, (s) => s.relayUs) ?? 0);
    console.log('');
    console.log(`pgbench -S -n -c ${CLIENTS} -j ${THREADS} -T ${DURATION_S}, scale ${SCALE}, ${REPS} interleaved reps, ${CPUS} CPUs, compute ${COMPUTE_CU} CU`);
    console.log(
      `  ${'path'.padEnd(36)} ${'median tps'.padStart(10)} ${'vs direct'.padStart(9)}   median CPU µs/tx: client compute relay  total   CPU-model ratio`,
    );
    for (const t of targets) {
      const m = med(t.name)!;
      console.log(
        `  ${t.label.padEnd(36)} ${m.toFixed(0).padStart(10)} ${(m / direct).toFixed(2).padStart(9)}   ${''.padEnd(17)}${f1(med(t.name, (s) => s.clientUs))} ${f1(med(t.name, (s) => s.computeUs)).padStart(7)} ${f1(med(t.name, (s) => s.relayUs))} ${f1(total(t.name)).padStart(6)}   ${(total('direct') / total(t.name)).toFixed(2).padStart(15)}`,
      );
    }
    const ratio = (a: string, b: string) => (med(a)! / med(b)!).toFixed(2);
    console.log('');
    console.log(`  proxy-TLS / direct-TLS    ${ratio('proxy TLS', 'direct TLS')}  (target ≥ 0.90: same clients, same sslmode)`);
    console.log(`  proxy-plain / direct      ${ratio('proxy plain', 'direct')}  (target ≥ 0.90)`);
    console.log(`  proxy-TLS / direct        ${ratio('proxy TLS', 'direct')}  (TLS against a plaintext floor: includes the client's own TLS)`);
    console.log(`  direct-TLS / direct       ${ratio('direct TLS', 'direct')}  (what TLS costs without any relay)`);
    console.log(`  pgbouncer / direct        ${ratio('pgbouncer', 'direct')}`);
    console.log(`  proxy-plain / pgbouncer   ${ratio('proxy plain', 'pgbouncer')}`);
    console.log(`  proxy-TLS / pgbouncer-TLS ${ratio('proxy TLS', 'pgbouncer TLS')}`);
    const worstOther = Math.max(...[...samples.values()].flat().map((s) => s.otherPct + s.stealPct));
    console.log(`  (this process idles at ${idleMsPerS.toFixed(1)} ms CPU/s, counted in the proxy's relay column;`);
    console.log(`   CPU-model ratio = direct's total CPU/tx ÷ the path's, the TPS ratio of a CPU-bound host;`);
    console.log(`   other load + steal peaked at ${worstOther.toFixed(0)}% of the machine${worstOther > 10 ? ': TPS is noisy, trust the CPU columns more' : ''})`);
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
