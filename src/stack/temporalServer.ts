import { spawn, ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { canConnect } from '../engine/ports';
import { SEARCH_ATTRIBUTES } from '../temporal/searchAttributes';

export interface TemporalServerOptions {
  bin: string;
  port: number;
  uiPort: number;
  dataDir: string;
  namespace: string;
  headless?: boolean;
}

export interface TemporalServer {
  address: string;
  uiUrl?: string;
  stop(): Promise<void>;
}

/**
 * The Temporal dev server with SQLite persistence under the data dir (workflows survive a
 * restart), the project's namespace and search attributes, and the Web UI.
 */
export async function startTemporalServer(o: TemporalServerOptions): Promise<TemporalServer> {
  const dir = path.join(o.dataDir, 'temporal');
  fs.mkdirSync(dir, { recursive: true });
  const args = [
    'server', 'start-dev',
    '--ip', '127.0.0.1',
    '--port', String(o.port),
    '--db-filename', path.join(dir, 'temporal.db'),
    '--namespace', o.namespace,
    '--log-level', 'warn',
    '--dynamic-config-value', 'frontend.enableServerVersionCheck=false',
    // WAL with synchronous=NORMAL: every workflow task commits without waiting on fsync; a crash
    // of the process loses nothing, a power cut at most the last moments (embedded use only).
    '--sqlite-pragma', 'journal_mode=wal',
    '--sqlite-pragma', 'synchronous=normal',
    ...SEARCH_ATTRIBUTES.flatMap((k) => ['--search-attribute', `${k.name}=Keyword`]),
    ...(o.headless ? ['--headless'] : ['--ui-port', String(o.uiPort), '--ui-ip', '127.0.0.1']),
  ];
  const log = fs.openSync(path.join(dir, 'temporal.log'), 'a');
  const child: ChildProcess = spawn(o.bin, args, { stdio: ['ignore', log, log], detached: false });
  fs.closeSync(log);
  let exited: number | null = null;
  child.once('exit', (code) => {
    exited = code ?? -1;
  });
  const deadline = Date.now() + 60_000;
  while (!(await canConnect(o.port))) {
    if (exited !== null) throw new Error(`temporal dev server exited with ${exited}; see ${path.join(dir, 'temporal.log')}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`temporal dev server did not listen on ${o.port} within 60s; see ${path.join(dir, 'temporal.log')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    address: `127.0.0.1:${o.port}`,
    uiUrl: o.headless ? undefined : `http://127.0.0.1:${o.uiPort}`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (exited !== null) return resolve();
        const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.once('exit', () => {
          clearTimeout(killer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}
