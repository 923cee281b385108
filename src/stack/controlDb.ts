import path from 'node:path';
import fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import { initCluster, startCluster, stopCluster, writeRuntimeConf, withSystemClient } from '../engine/cluster';
import { ensureOwnedDir, exists } from '../engine/fs';
import { dataDirMajor, PgInstalls } from '../engine/pgInstalls';
import { generatePassword } from '../domain/secrets';

export interface ControlDb {
  url: string;
  stop(): Promise<void>;
}

/**
 * The embedded control-plane cluster: its own initdb'd directory under the data dir, a
 * password login for the platform over loopback. Used when DATABASE_URL is not set.
 */
export async function startControlDb(pgs: PgInstalls, dataDir: string, port: number, database = 'lampion'): Promise<ControlDb> {
  const root = path.join(dataDir, 'control');
  const pgdata = path.join(root, 'pgdata');
  const initialized = await exists(path.join(pgdata, '.lampion-initialized'));
  // A cluster keeps the major it was made with; a new one gets the newest.
  const pg = initialized ? pgs.get(await dataDirMajor(pgdata)) : pgs.newest;
  const sock = path.join(root, 'sock');
  const pwFile = path.join(root, 'password');
  await fsp.mkdir(dataDir, { recursive: true });
  await ensureOwnedDir(root, pg.user, 0o711);
  await ensureOwnedDir(sock, pg.user);
  if (!initialized) {
    await fsp.rm(pgdata, { recursive: true, force: true });
    await ensureOwnedDir(pgdata, pg.user);
    await initCluster(pg, pgdata);
    await fsp.writeFile(path.join(pgdata, '.lampion-initialized'), '');
  }
  if (!fs.existsSync(pwFile)) fs.writeFileSync(pwFile, generatePassword(), { mode: 0o600 });
  const password = fs.readFileSync(pwFile, 'utf8').trim();
  await writeRuntimeConf({ ...pg, guardLibrary: undefined }, pgdata, { port, socketDir: sock });
  await startCluster(pg, pgdata, path.join(root, 'postgres.log'));
  await withSystemClient(sock, port, async (c) => {
    const role = await c.query("SELECT 1 FROM pg_roles WHERE rolname = 'lampion'");
    await c.query(`${role.rowCount ? 'ALTER' : 'CREATE'} ROLE lampion LOGIN CREATEDB PASSWORD ${c.escapeLiteral(password)}`);
    const db = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (!db.rowCount) await c.query(`CREATE DATABASE ${c.escapeIdentifier(database)} OWNER lampion`);
  });
  return {
    url: `postgresql://lampion:${password}@127.0.0.1:${port}/${database}`,
    stop: () => stopCluster(pg, pgdata),
  };
}
