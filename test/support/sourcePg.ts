import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Client } from 'pg';
import { run } from '../../src/engine/exec';
import { PgInstall, pgBin, startCluster, stopCluster } from '../../src/engine/cluster';
import { ensureOwnedDir } from '../../src/engine/fs';
import { isPortFree } from '../../src/engine/ports';
import { testPgInstalls } from './pg';

/**
 * A Postgres server outside Lampion, as an import's source: its own data dir under the suite's
 * root, its own port on 127.0.0.1, run as the compute OS user (Postgres refuses root). With `tls`,
 * a self-signed certificate and a pg_hba that has only `hostssl` lines: plain TCP is refused.
 */
export interface SourceServer {
  major: number;
  port: number;
  dataDir: string;
  socketDir: string;
  /** The certificate it presents, when TLS is on. */
  certFile?: string;
  /** A superuser session over its socket (trust). */
  admin(database?: string): Promise<Client>;
  /** SQL as the superuser; the last statement's rows. */
  sql(sql: string, database?: string): Promise<any[]>;
  dsn(o: { user: string; password: string; database: string; params?: string; host?: string; port?: number }): string;
  stop(): Promise<void>;
}

async function freePort(from: number): Promise<number> {
  for (let p = from; p < from + 2000; p++) if (await isPortFree(p)) return p;
  throw new Error('no free port');
}

export async function startSourceServer(o: { major: number; tls?: boolean; name: string }): Promise<SourceServer> {
  const pg: PgInstall = testPgInstalls().get(o.major);
  const root = path.join(process.env.LAMPION_TEST_ROOT!, `source-${o.name}-${process.pid}`);
  fs.mkdirSync(root, { recursive: true, mode: 0o711 });
  fs.chmodSync(root, 0o711);
  const dataDir = path.join(root, 'data');
  const socketDir = path.join(root, 'sock');
  await ensureOwnedDir(dataDir, pg.user);
  await ensureOwnedDir(socketDir, pg.user);
  const logDir = path.join(root, 'log');
  await ensureOwnedDir(logDir, pg.user);
  await run(pgBin(pg, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync', '--no-instructions'], { user: pg.user });
  const port = await freePort(41000 + Math.floor(Math.random() * 4000));
  const conf = [
    `listen_addresses = '127.0.0.1'`,
    `port = ${port}`,
    `unix_socket_directories = '${socketDir}'`,
    `fsync = off`,
    `shared_buffers = '64MB'`,
    `password_encryption = 'scram-sha-256'`,
  ];
  let certFile: string | undefined;
  if (o.tls) {
    certFile = path.join(dataDir, 'server.crt');
    const keyFile = path.join(dataDir, 'server.key');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-subj', '/CN=source-test', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '30'], { stdio: 'ignore' });
    for (const f of [certFile, keyFile]) {
      fs.chmodSync(f, 0o600);
      if (pg.user) fs.chownSync(f, pg.user.uid, pg.user.gid);
    }
    conf.push(`ssl = on`, `ssl_cert_file = 'server.crt'`, `ssl_key_file = 'server.key'`);
  }
  fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), `\n${conf.join('\n')}\n`);
  const hba = ['local all all trust', o.tls ? 'hostssl all all 127.0.0.1/32 scram-sha-256' : 'host all all 127.0.0.1/32 scram-sha-256'];
  fs.writeFileSync(path.join(dataDir, 'pg_hba.conf'), `${hba.join('\n')}\n`);
  if (pg.user) fs.chownSync(path.join(dataDir, 'pg_hba.conf'), pg.user.uid, pg.user.gid);
  await startCluster(pg, dataDir, path.join(logDir, 'postgres.log'));

  const admin = async (database = 'postgres') => {
    const c = new Client({ host: socketDir, port, user: 'postgres', database });
    c.on('error', () => undefined);
    await c.connect();
    return c;
  };
  return {
    major: o.major,
    port,
    dataDir,
    socketDir,
    certFile,
    admin,
    async sql(text, database) {
      const c = await admin(database);
      try {
        const r = await c.query(text);
        const last = Array.isArray(r) ? r[r.length - 1] : r;
        return last.rows;
      } finally {
        await c.end();
      }
    },
    dsn(d) {
      const q = d.params ? `?${d.params}` : '';
      return `postgresql://${encodeURIComponent(d.user)}:${encodeURIComponent(d.password)}@${d.host ?? '127.0.0.1'}:${d.port ?? port}/${encodeURIComponent(d.database)}${q}`;
    },
    async stop() {
      await stopCluster(pg, dataDir, 'immediate').catch(() => undefined);
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}
