import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { Client } from 'pg';
import { TlsTunnel, TUNNEL_PORT, TunnelTarget } from '../src/engine/tlsTunnel';
import { startSourceServer, SourceServer } from './support/sourcePg';
import { testBinDirs, testPgInstalls } from './support/pg';

/**
 * The TLS tunnel that lets client tools without TLS (the embedded 18 build's pg_dump) read a
 * source that accepts only TLS: against a real Postgres 15 with hostssl lines only, and against
 * fake servers for what a real one will not do (answer 'N', send bytes after its answer, hang).
 */

const PASSWORD = 'tunnel-pw';
const user = testPgInstalls().newest.user;

/** A session through the tunnel, as libpq-less node-postgres sees it: plain on a unix socket. */
async function query(tunnel: TlsTunnel, sql: string, password = PASSWORD): Promise<any> {
  const c = new Client({ host: tunnel.dir, port: TUNNEL_PORT, user: 'tunnel_user', password, database: 'postgres', ssl: false, connectionTimeoutMillis: 5000 });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return (await c.query(sql)).rows[0];
  } finally {
    await c.end();
  }
}

/** A server that answers the SSLRequest with `answer` and then records what it receives. */
async function fakeServer(answer: Buffer | null): Promise<{ port: number; received: () => Buffer; close(): Promise<void> }> {
  const got: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    let first = true;
    s.on('data', (d) => {
      if (first && answer) s.write(answer);
      else got.push(d);
      first = false;
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    received: () => Buffer.concat(got),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('TLS tunnel', () => {
  let pg: SourceServer;
  const target = (over: Partial<TunnelTarget>): TunnelTarget => ({ host: '127.0.0.1', port: pg.port, sslmode: 'require', connectTimeoutMs: 5000, ...over });
  const open = (over: Partial<TunnelTarget>) => TlsTunnel.open(target(over), { user });

  beforeAll(async () => {
    pg = await startSourceServer({ major: 15, tls: true, name: 'tunnel' });
    await pg.sql(`CREATE ROLE tunnel_user LOGIN PASSWORD '${PASSWORD}'`);
  });
  afterAll(async () => {
    await pg?.stop();
  });

  it.each(['prefer', 'require', 'allow'] as const)('sslmode=%s reaches a TLS-only server over TLS', async (sslmode) => {
    const t = await open({ sslmode });
    try {
      expect(await query(t, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')).toEqual({ ssl: true });
      expect(t.usedTls).toBe(true);
      expect(t.lastFailure).toBeUndefined();
    } finally {
      await t.close();
    }
  });

  it('verify-ca and verify-full accept the server with its CA, and refuse it without', async () => {
    const ca = fs.readFileSync(pg.certFile!);
    for (const sslmode of ['verify-ca', 'verify-full'] as const) {
      const ok = await open({ sslmode, ca });
      expect(await query(ok, 'SELECT 1 AS one')).toEqual({ one: 1 });
      await ok.close();
      const refused = await open({ sslmode });
      await expect(query(refused, 'SELECT 1')).rejects.toThrow(/certificate/);
      expect(refused.lastFailure?.kind).toBe('tls_verify_failed');
      await refused.close();
    }
  });

  it('sslmode=disable is refused by a TLS-only server (its own error)', async () => {
    const t = await open({ sslmode: 'disable' });
    await expect(query(t, 'SELECT 1')).rejects.toThrow(/no pg_hba.conf entry .* no encryption/);
    expect(t.usedTls).toBe(false);
    await t.close();
  });

  it('libpq without TLS (the 18 build\'s psql) logs in with SCRAM through it: channel binding is not offered', async () => {
    const t = await open({ sslmode: 'require' });
    try {
      const bin = path.join(testBinDirs().find((d) => d.major === 18)?.binDir ?? testBinDirs()[0].binDir, 'psql');
      const out = await new Promise<string>((resolve, reject) =>
        execFile(
          bin,
          ['-X', '-A', '-t', '-c', 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'],
          { env: { PATH: process.env.PATH, PGHOST: t.dir, PGPORT: String(TUNNEL_PORT), PGUSER: 'tunnel_user', PGDATABASE: 'postgres', PGPASSWORD: PASSWORD, PGSSLMODE: 'disable' }, uid: user?.uid, gid: user?.gid },
          (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout.trim())),
        ),
      );
      expect(out).toBe('t');
    } finally {
      await t.close();
    }
  });

  it('its socket is in a 0700 directory of the connecting user, removed at close', async () => {
    const t = await open({});
    const st = fs.statSync(t.dir);
    expect(st.mode & 0o777).toBe(0o700);
    if (user) expect(st.uid).toBe(user.uid);
    expect(fs.existsSync(t.socketPath)).toBe(true);
    await t.close();
    expect(fs.existsSync(t.dir)).toBe(false);
  });

  it("a server answering 'N': prefer goes on in plain, passing the client's bytes; require refuses", async () => {
    const fake = await fakeServer(Buffer.from('N'));
    try {
      const prefer = await TlsTunnel.open({ host: '127.0.0.1', port: fake.port, sslmode: 'prefer', connectTimeoutMs: 2000 });
      const local = net.connect(prefer.socketPath);
      local.on('error', () => undefined);
      local.write('hello');
      await until(() => fake.received().toString() === 'hello');
      local.destroy();
      expect(prefer.usedTls).toBe(false);
      await prefer.close();

      const require = await TlsTunnel.open({ host: '127.0.0.1', port: fake.port, sslmode: 'require', connectTimeoutMs: 2000 });
      const reply = await exchange(require.socketPath);
      expect(reply[0]).toBe('E'.charCodeAt(0));
      expect(reply.toString()).toMatch(/does not support TLS, but sslmode=require requires it/);
      expect(require.lastFailure?.kind).toBe('tls_refused');
      await require.close();
    } finally {
      await fake.close();
    }
  });

  it('bytes after the server\'s SSL answer are refused (a man in the middle)', async () => {
    const fake = await fakeServer(Buffer.from('Sjunk'));
    try {
      const t = await TlsTunnel.open({ host: '127.0.0.1', port: fake.port, sslmode: 'require', connectTimeoutMs: 2000 });
      await exchange(t.socketPath);
      expect(t.lastFailure?.kind).toBe('tls_failed');
      await t.close();
    } finally {
      await fake.close();
    }
  });

  it('a closed port is unreachable; a server that never answers times out', async () => {
    const closed = await TlsTunnel.open({ host: '127.0.0.1', port: 1, sslmode: 'prefer', connectTimeoutMs: 2000 });
    expect((await exchange(closed.socketPath)).toString()).toMatch(/connection refused/);
    expect(closed.lastFailure?.kind).toBe('unreachable');
    await closed.close();
    const silent = await fakeServer(null);
    try {
      const t = await TlsTunnel.open({ host: '127.0.0.1', port: silent.port, sslmode: 'require', connectTimeoutMs: 500 });
      expect((await exchange(t.socketPath)).toString()).toMatch(/no answer/);
      expect(t.lastFailure?.kind).toBe('timeout');
      await t.close();
    } finally {
      await silent.close();
    }
  });
});

async function until(f: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!f()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Connects to the tunnel, sends a few bytes, returns all it answers until it closes. */
function exchange(socketPath: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath);
    const got: Buffer[] = [];
    s.on('data', (d) => got.push(d));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(got)));
    s.write(Buffer.from([0, 0, 0, 8, 0, 3, 0, 0]));
  });
}
