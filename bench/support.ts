/**
 * What the benchmarks share: a whole Lampion stack in a temp dir on free ports, command-line
 * arguments, quantiles, Temporal history timings and plain-text tables.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { tsToMs } from '@temporalio/common/lib/time';
import { loadConfig } from '../src/config';
import { Stack } from '../src/stack/stack';
import { isPortFree } from '../src/engine/ports';
import { generateApiKey } from '../src/domain/apiKeys';

/** `--name N`: a positive number, else the default. */
export function argNumber(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : dflt;
}

/** `--name a,b`: a comma list, else the default. */
export function argList(name: string, dflt: string[]): string[] {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  return v && !v.startsWith('--') ? v.split(',').map((s) => s.trim()).filter(Boolean) : dflt;
}

export async function freePort(from: number): Promise<number> {
  for (let p = from; p < from + 1000; p++) if (await isPortFree(p)) return p;
  throw new Error('no free port');
}

/** Nearest-rank quantile, for tails: p95 of 7 samples is the max. */
export const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
};

/** The one median of every benchmark: the middle sample, or the mean of the two middle ones. */
export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

export const fmtMs = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '-' : `${x.toFixed(0)} ms`);

/** Left-aligned first column, right-aligned others. */
export function table(header: string[], rows: string[][], indent = '  '): string {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => indent + r.map((cell, c) => (c === 0 ? (cell ?? '').padEnd(widths[c]) : (cell ?? '').padStart(widths[c]))).join('  ');
  return [line(header), indent + widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Load average and core count, to qualify numbers taken on a shared machine. */
export function machineLoad(): string {
  return `load avg ${os.loadavg().map((x) => x.toFixed(2)).join(' / ')} (1/5/15 min) on ${os.cpus().length} cores`;
}

export interface BenchStack {
  stack: Stack;
  dataDir: string;
  /** The proxy's certificate, for node-postgres `ssl: { ca }`. */
  ca: string;
  /** http://127.0.0.1:<port> */
  api: string;
  key: string;
  headers: Record<string, string>;
  /** A JSON API call; `path` starts with /v1. */
  request(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

/** A JSON API call that must answer one of `want`; its body. */
export async function expectStatus(b: BenchStack, method: string, p: string, body: unknown, want: number[]) {
  const res = await b.request(method, p, body);
  if (!want.includes(res.status)) throw new Error(`${method} ${p} → ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

const running = new Set<BenchStack>();
let signalsHooked = false;

/** Ctrl-C during a long benchmark still stops the computes, Temporal and the control DB. */
function hookSignals() {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      console.error(`\n${sig}: stopping ${running.size} stack(s)…`);
      Promise.allSettled([...running].map((s) => s.stop())).finally(() => process.exit(130));
    });
  }
}

/**
 * A whole Stack (embedded control DB and Temporal, workers, API, proxy) in a fresh temp dir under
 * `baseDir` (default os.tmpdir()) on free ports, with a known owner key. stop() also removes the dir.
 */
export async function startBenchStack(opts: { baseDir?: string; prefix?: string; env?: Record<string, string> } = {}): Promise<BenchStack> {
  const dataDir = fs.mkdtempSync(path.join(opts.baseDir ?? os.tmpdir(), opts.prefix ?? 'lampion-bench-'));
  fs.chmodSync(dataDir, 0o711);
  const key = generateApiKey();
  let stack: Stack;
  try {
    const config = loadConfig({
      ...process.env,
      LAMPION_DATA_DIR: dataDir,
      LAMPION_API_PORT: '0',
      LAMPION_PROXY_PORT: '0',
      LAMPION_CONTROL_DB_PORT: String(await freePort(35432)),
      LAMPION_TEMPORAL_PORT: String(await freePort(37233)),
      LAMPION_TEMPORAL_UI_PORT: String(await freePort(38233)),
      LAMPION_BOOTSTRAP_API_KEY: key,
      LOG_LEVEL: 'warn',
      ...opts.env,
    });
    stack = await Stack.start(config, undefined, pino({ level: 'warn' }));
  } catch (err) {
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const api = `http://127.0.0.1:${stack.apiPort}`;
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
  let stopped: Promise<void> | undefined;
  const b: BenchStack = {
    stack,
    dataDir,
    ca: fs.readFileSync(path.join(dataDir, 'tls', 'proxy.crt'), 'utf8'),
    api,
    key,
    headers,
    async request(method, p, body) {
      const res = await fetch(`${api}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
    stop() {
      stopped ??= (async () => {
        running.delete(b);
        try {
          await stack.stop();
        } finally {
          removeTree(dataDir);
        }
      })();
      return stopped;
    },
  };
  running.add(b);
  hookSignals();
  return b;
}

/** rm -rf that also deletes btrfs subvolumes left inside (rm cannot unlink a subvolume as non-root, and is slow on big ones). */
export function removeTree(dir: string): void {
  if (!fs.existsSync(dir)) return;
  const fsType = spawnSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).stdout.trim();
  if (fsType === 'btrfs') {
    const list = spawnSync('btrfs', ['subvolume', 'list', '-o', dir], { encoding: 'utf8' });
    const mnt = spawnSync('findmnt', ['-n', '-o', 'TARGET', '-T', dir], { encoding: 'utf8' }).stdout.trim();
    const subs = (list.stdout ?? '')
      .split('\n')
      .map((l) => /path (.+)$/.exec(l)?.[1])
      .filter((p): p is string => Boolean(p))
      .map((p) => path.join(mnt, p.replace(/^<FS_TREE>\//, '')))
      .filter((p) => p.startsWith(dir + path.sep))
      .sort((a, b) => b.length - a.length);
    for (const s of subs) spawnSync('btrfs', ['subvolume', 'delete', s], { stdio: 'ignore' });
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Mounts (idempotently) the loop btrfs volume of scripts/btrfs-volume.sh; throws with its reason when it cannot. */
export function ensureBtrfsVolume(mountPoint: string, size: string): string {
  const script = path.resolve(__dirname, '..', '..', 'scripts', 'btrfs-volume.sh');
  const src = fs.existsSync(script) ? script : path.resolve(__dirname, '..', 'scripts', 'btrfs-volume.sh');
  const up = spawnSync('bash', [src, 'up', mountPoint, size], { encoding: 'utf8' });
  if (up.status !== 0) throw new Error(`scripts/btrfs-volume.sh up ${mountPoint} ${size} exited ${up.status}: ${(up.stderr || up.error?.message || '').trim()}`);
  return mountPoint;
}

export interface ActivityTiming {
  name: string;
  /** Scheduled → started: task queue latency. */
  queueMs: number;
  /** Started → completed: the activity's own run time. */
  runMs: number;
}

export interface WorkflowTimings {
  totalMs: number;
  activities: ActivityTiming[];
}

/** Per-activity timings of a finished workflow run, from its Temporal history (server clock). */
export async function workflowTimings(stack: Stack, workflowId: string, runId?: string): Promise<WorkflowTimings> {
  const history = await stack.temporal.workflow.getHandle(workflowId, runId).fetchHistory();
  let start = NaN;
  let end = NaN;
  const byId = new Map<string, { name: string; scheduled: number; started?: number; completed?: number }>();
  for (const ev of history.events ?? []) {
    const t = tsToMs(ev.eventTime);
    if (ev.workflowExecutionStartedEventAttributes) start = t;
    if (ev.workflowExecutionCompletedEventAttributes || ev.workflowExecutionFailedEventAttributes) end = t;
    const sched = ev.activityTaskScheduledEventAttributes;
    if (sched) byId.set(String(ev.eventId), { name: sched.activityType?.name ?? '?', scheduled: t });
    const started = ev.activityTaskStartedEventAttributes;
    if (started) {
      const a = byId.get(String(started.scheduledEventId));
      if (a) a.started = t;
    }
    const done = ev.activityTaskCompletedEventAttributes;
    if (done) {
      const a = byId.get(String(done.scheduledEventId));
      if (a) a.completed = t;
    }
  }
  const activities = [...byId.values()].map((a) => ({
    name: a.name,
    queueMs: (a.started ?? a.scheduled) - a.scheduled,
    runMs: (a.completed ?? NaN) - (a.started ?? a.scheduled),
  }));
  return { totalMs: end - start, activities };
}

/**
 * Median of each activity's run time over several runs of one workflow type, plus the rest of the
 * workflow's time (queue latency of activities and workflow tasks): rows for table().
 */
export function workflowBreakdownRows(samples: WorkflowTimings[]): string[][] {
  const names: string[] = [];
  for (const s of samples) for (const a of s.activities) if (!names.includes(a.name)) names.push(a.name);
  const rows = names.map((n) => {
    const runs = samples.map((s) => s.activities.filter((a) => a.name === n).reduce((x, a) => x + a.runMs, 0));
    return [`  activity ${n}`, fmtMs(median(runs)), fmtMs(quantile(runs, 0.95))];
  });
  const queue = samples.map((s) => s.activities.reduce((x, a) => x + a.queueMs, 0));
  const rest = samples.map((s) => s.totalMs - s.activities.reduce((x, a) => x + a.queueMs + a.runMs, 0));
  rows.push(['  activity queue latency (sum)', fmtMs(median(queue)), fmtMs(quantile(queue, 0.95))]);
  rows.push(['  workflow tasks / between activities', fmtMs(median(rest)), fmtMs(quantile(rest, 0.95))]);
  const total = samples.map((s) => s.totalMs);
  rows.push(['  workflow total (server clock)', fmtMs(median(total)), fmtMs(quantile(total, 0.95))]);
  return rows;
}
