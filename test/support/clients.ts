import { execFile, execFileSync } from 'node:child_process';
import { clientBin } from './pg';

export interface ProcResult {
  code: number;
  stdout: string;
  stderr: string;
}

function exec(file: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<ProcResult> {
  return new Promise((resolve) => {
    execFile(file, args, { env: { ...process.env, ...env }, timeout: 60_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as any).code === 'number' ? (err as any).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The real psql, with the connection string exactly as the API gave it. */
export function psql(connectionString: string, sql: string): Promise<ProcResult> {
  const bin = clientBin('psql');
  return exec(bin, ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', connectionString, '-c', sql], { PGCONNECT_TIMEOUT: '10' });
}

/**
 * node-postgres in a fresh process, with the connection string exactly as given. pg treats
 * sslmode=require as verify-full, so the process trusts the proxy's certificate the way a user
 * would: NODE_EXTRA_CA_CERTS.
 */
export async function nodePg(connectionString: string, sql: string, caFile: string): Promise<any[]> {
  const script = `
    const { Client } = require(${JSON.stringify(require.resolve('pg'))});
    (async () => {
      const c = new Client({ connectionString: process.argv[1] });
      await c.connect();
      const r = await c.query(process.argv[2]);
      const results = Array.isArray(r) ? r : [r];
      process.stdout.write(JSON.stringify(results[results.length - 1].rows));
      await c.end();
    })().catch((e) => { process.stderr.write(String(e && e.message || e)); process.exit(2); });`;
  const r = await exec(process.execPath, ['-e', script, connectionString, sql], { NODE_EXTRA_CA_CERTS: caFile, NODE_NO_WARNINGS: '1' });
  if (r.code !== 0) throw new Error(`node-postgres failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** psql that must succeed: its trimmed output, or an error carrying psql's stderr. */
export async function psqlOk(connectionString: string, sql: string): Promise<string> {
  const r = await psql(connectionString, sql);
  if (r.code !== 0) throw new Error(`psql failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** postgres processes serving this data dir. */
export function postgresOf(dataDir: string): string[] {
  try {
    return execFileSync('pgrep', ['-a', '-f', `postgres.*${dataDir}( |$)`], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}
