import fs from 'node:fs';
import path from 'node:path';
import { spawn, ChildProcess } from 'node:child_process';
import { Client } from 'pg';
import { isolatedStackBase } from './isolation';
import { randomToken } from '../../src/domain/ids';
import { isPortFree } from '../../src/engine/ports';
import { processesUsingDb, temporalFiles } from '../../src/stack/temporalServer';

const ROOT = path.resolve(__dirname, '..', '..');

export interface ProcessStack {
  dataDir: string;
  env: Record<string, string>;
  api: string;
  ownerKey: string;
  ports: number[];
  /** The running node process of the stack (changes on start()). */
  proc?: ChildProcess;
  /** Everything the stack's processes printed so far, every run. */
  output(): string;
  /** Starts the stack (`node src/cli/start.ts`, embedded Temporal) and waits until it is up. */
  start(): Promise<void>;
  /** kill -9 of the node process; resolves when it is gone. */
  kill9(): Promise<void>;
  /** Ctrl-C, as an operator stops it. */
  stop(): Promise<void>;
  request(method: string, url: string, o?: { body?: unknown; timeoutMs?: number }): Promise<{ status: number; body: any; headers: Headers; ms: number }>;
  /** Pids of the embedded Temporal server process(es) on this stack's db file (wrappers excluded). */
  temporalPids(): number[];
  /** Removes the catalog database and the data dir (after stop). */
  destroy(): Promise<void>;
}

async function freePorts(n: number): Promise<number[]> {
  const out: number[] = [];
  let p = 30000 + Math.floor(Math.random() * 20000);
  while (out.length < n) {
    if (await isPortFree(p)) out.push(p);
    p++;
  }
  return out;
}

export function cmdlineOf(pid: number): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return undefined;
  }
}

/** Live (non-zombie) processes whose command line mentions `needle`. */
export function processesMentioning(needle: string): { pid: number; cmd: string }[] {
  const out: { pid: number; cmd: string }[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const cmd = cmdlineOf(Number(e));
    if (!cmd || !cmd.includes(needle)) continue;
    try {
      if (/^\S+ \(.*\) Z /.test(fs.readFileSync(`/proc/${e}/stat`, 'utf8'))) continue;
    } catch {
      continue;
    }
    out.push({ pid: Number(e), cmd });
  }
  return out;
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * A whole Lampion stack in a node process of its own, as `npm start` runs it, with the embedded
 * Temporal (its own SQLite file under the data dir, free ports) so a test can kill -9 the node
 * process or the Temporal server. The catalog lives in a database of its own on the suite's
 * shared control Postgres. TypeScript runs through test/support/register-ts.js (no build).
 */
export async function createProcessStack(extraEnv: Record<string, string> = {}): Promise<ProcessStack> {
  const { tag, base, dataDir, databaseUrl, ownerKey } = await isolatedStackBase('proc');
  const [apiPort, proxyPort, temporalPort, uiPort] = await freePorts(4);
  const env: Record<string, string> = {
    LAMPION_DATA_DIR: dataDir,
    LAMPION_API_PORT: String(apiPort),
    LAMPION_PROXY_PORT: String(proxyPort),
    LAMPION_TEMPORAL_PORT: String(temporalPort),
    LAMPION_TEMPORAL_UI_PORT: String(uiPort),
    LAMPION_HOST_ID: `p-${tag}`,
    LAMPION_TASK_QUEUE: `control-${tag}`,
    LAMPION_BOOTSTRAP_API_KEY: ownerKey,
    DATABASE_URL: databaseUrl,
    LOG_LEVEL: 'info',
    ...(process.env.LAMPION_PG_OS_USER ? { LAMPION_PG_OS_USER: process.env.LAMPION_PG_OS_USER } : {}),
    ...extraEnv,
  };
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete childEnv.TEMPORAL_ADDRESS; // the embedded server
  delete childEnv.NODE_OPTIONS;
  const logFile = path.join(process.env.LAMPION_TEST_ROOT!, `proc-${tag}.log`);
  const api = `http://127.0.0.1:${apiPort}`;
  const db = temporalFiles(dataDir).db;

  const s: ProcessStack = {
    dataDir,
    env,
    api,
    ownerKey,
    ports: [apiPort, proxyPort, temporalPort, uiPort],
    output: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''),
    async start() {
      const out = fs.openSync(logFile, 'a');
      fs.writeSync(out, `\n=== start ${new Date().toISOString()}\n`);
      const proc = spawn(process.execPath, ['--enable-source-maps', '-r', path.join(__dirname, 'register-ts.js'), path.join(ROOT, 'src', 'cli', 'start.ts')], {
        cwd: ROOT,
        env: childEnv,
        stdio: ['ignore', out, out],
      });
      fs.closeSync(out);
      s.proc = proc;
      let exit: string | undefined;
      proc.once('exit', (code, sig) => (exit = `${sig ?? code}`));
      await waitFor(
        'the stack to print "Lampion is running"',
        () => {
          if (exit !== undefined) throw new Error(`stack exited with ${exit}:\n${s.output().slice(-3000)}`);
          return s.output().split('=== start').pop()!.includes('Lampion is running') || undefined;
        },
        120_000,
      ).catch((err) => {
        if (exit !== undefined) throw new Error(`stack exited with ${exit}:\n${s.output().slice(-3000)}`);
        throw err;
      });
    },
    async kill9() {
      const proc = s.proc;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await gone;
    },
    async stop() {
      const proc = s.proc;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGINT');
      const t = setTimeout(() => proc.kill('SIGKILL'), 60_000);
      await gone;
      clearTimeout(t);
    },
    async request(method, url, o = {}) {
      const started = Date.now();
      const res = await fetch(`${api}${url}`, {
        method,
        headers: { authorization: `Bearer ${ownerKey}`, ...(o.body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: o.body === undefined ? undefined : JSON.stringify(o.body),
        signal: AbortSignal.timeout(o.timeoutMs ?? 30_000),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers, ms: Date.now() - started };
    },
    temporalPids: () => processesUsingDb(db).filter((p) => !/flock|setpriv/.test((cmdlineOf(p) ?? '').split(' ')[0])),
    async destroy() {
      await s.stop();
      for (const p of processesMentioning(dataDir)) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      fs.rmSync(dataDir, { recursive: true, force: true });
      const a = new Client({ connectionString: base });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS lampion_${tag} WITH (FORCE)`).catch(() => undefined);
      await a.end();
    },
  };
  return s;
}
