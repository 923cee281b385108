import { spawn } from 'node:child_process';
import type { ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import { Client } from 'pg';
import { DUMP_APPLICATION_NAME, LIST_EXTENSIONS_SQL, type InstalledExtension, type PgDumpCommand } from '../domain/pgsql/dump';

export interface ComputeLogin {
  host: string;
  port: number;
  user: string;
  password: string;
}

/**
 * One short session on the database before the dump: it exists, the login works, and which
 * extensions it has (the platform's are left out of the dump). Fails with Postgres' SQLSTATE
 * (3D000: no such database) or a connection error's message.
 */
export async function databaseExtensions(login: ComputeLogin, database: string): Promise<{ ok: true; extensions: InstalledExtension[] } | { ok: false; sqlState?: string; message: string }> {
  const c = new Client({ ...login, database, ssl: false, connectionTimeoutMillis: 10_000, statement_timeout: 10_000, application_name: `${DUMP_APPLICATION_NAME}_check` });
  c.on('error', () => undefined);
  try {
    await c.connect();
    const r = await c.query<InstalledExtension>(LIST_EXTENSIONS_SQL);
    return { ok: true, extensions: r.rows };
  } catch (err) {
    const e = err as Error & { code?: string };
    return { ok: false, sqlState: typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined, message: e.message };
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** pg_dump's stderr kept for the error message (its last bytes; it is short unless verbose). */
const STDERR_KEEP = 16 * 1024;

type Exit = { code: number | null; signal: NodeJS.Signals | null };

export type DumpStart = { ok: true; dump: RunningDump } | ({ ok: false; stderr: string; spawnError?: NodeJS.ErrnoException } & Exit);

/** A pg_dump that has written its first bytes; nothing is sent until {@link RunningDump.pipeTo}. */
export interface RunningDump {
  pipeTo(res: ServerResponse): Promise<DumpEnd>;
  /** Stops pg_dump and discards what it has not delivered. */
  kill(): void;
}

export interface DumpEnd extends Exit {
  outcome: 'complete' | 'failed' | 'client_gone';
  stderr: string;
}

/**
 * Runs pg_dump and waits for its first stdout chunk or its exit, whichever comes first, so that a
 * dump that cannot start (no such database, no such table, compute unreachable) is answered with
 * a proper error before any header is sent. `abort` (the client went away meanwhile) kills it.
 *
 * stdout goes at once into a PassThrough we own: Node resumes a child's paused stdout when the
 * child exits (to reach EOF), and whatever it reads then with no listener is lost, so a short
 * dump held back while waiting would arrive truncated. The pipe keeps backpressure: at most the
 * PassThrough's buffer is held while the response is not being read.
 */
export function startDump(cmd: PgDumpCommand, abort: AbortSignal): Promise<DumpStart> {
  return new Promise((resolve) => {
    const child = spawn(cmd.file, cmd.args, { env: cmd.env, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
    const out = new PassThrough();
    child.stdout.pipe(out);
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      stderr = (stderr + d).slice(-STDERR_KEEP);
    });
    const exited = new Promise<Exit>((done) => child.once('close', (code, signal) => done({ code, signal })));
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      // Unread output would otherwise hold the pipe (and the child's 'close') open.
      child.stdout.destroy();
      out.destroy();
    };
    abort.addEventListener('abort', kill, { once: true });
    if (abort.aborted) kill();

    let settled = false;
    const settle = (r: DumpStart) => {
      if (settled) return;
      settled = true;
      abort.removeEventListener('abort', kill);
      resolve(r);
    };
    child.once('error', (err: NodeJS.ErrnoException) => settle({ ok: false, code: null, signal: null, stderr: err.message, spawnError: err }));
    out.once('data', (first: Buffer) => {
      out.pause();
      settle({ ok: true, dump: { kill, pipeTo: (res) => pipe(out, first, exited, () => stderr, kill, res) } });
    });
    void exited.then((e) => settle({ ok: false, ...e, stderr }));
  });
}

/**
 * Streams the dump into the response with backpressure (pipe pauses the output while the client
 * is slow, and pg_dump then waits on its full stdout, so memory stays constant). The response is
 * ended properly only when pg_dump exits 0 and everything it wrote was handed to the response;
 * otherwise its socket is destroyed without the terminating chunk, so the client sees a broken
 * transfer instead of a short file that looks complete. A client that goes away kills pg_dump.
 */
function pipe(out: PassThrough, first: Buffer, exited: Promise<Exit>, stderr: () => string, kill: () => void, res: ServerResponse): Promise<DumpEnd> {
  return new Promise((resolve) => {
    let clientGone = false;
    let drained = false;
    let exit: Exit | undefined;
    const finish = () => {
      if (!exit) return;
      const end = (outcome: DumpEnd['outcome']) => resolve({ outcome, ...exit!, stderr: stderr() });
      if (clientGone) return end('client_gone');
      if (exit.code !== 0) {
        out.unpipe(res);
        out.destroy();
        res.destroy();
        return end('failed');
      }
      if (!drained) return;
      res.end();
      end('complete');
    };
    res.once('close', () => {
      if (res.writableFinished) return;
      clientGone = true;
      kill();
      finish();
    });
    out.once('end', () => {
      drained = true;
      finish();
    });
    void exited.then((e) => {
      exit = e;
      finish();
    });
    res.write(first);
    out.pipe(res, { end: false });
  });
}
