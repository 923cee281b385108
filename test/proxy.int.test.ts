/**
 * The proxy against a real postgres 15 with SCRAM authentication, driven by node-postgres, psql
 * and raw sockets. Self-contained: it starts and stops its own postgres and does not rely on
 * the suite's globalSetup.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';

import { Client, type ClientConfig } from 'pg';
import pino from 'pino';

import {
  MessageFramer,
  parseErrorFields,
  serializeCancelRequest,
  serializeGssEncRequest,
  serializeSslRequest,
  serializeStartupMessage,
} from '../src/proxy/protocol';
import { type ProxyOptions, ProxyServer } from '../src/proxy/server';
import { loadOrCreateTls } from '../src/proxy/tls';

jest.setTimeout(60_000);

const PG_BIN = '/usr/lib/postgresql/15/bin';
const ROLE = 'lampion_app';
const PASSWORD = 'lampion-pw';
const logger = pino({ level: 'silent' });

let tmp: string;
let dataDir: string;
let pgPort: number;
let deadPort: number;
let postgres: ChildProcess | undefined;
let postgresLog = '';
let osUser: { uid: number; gid: number } | undefined;
let tlsPair: { key: string; cert: string };
let proxy: ProxyServer;
const extraProxies: ProxyServer[] = [];
const openClients: Client[] = [];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function run(
  cmd: string,
  args: string[],
  opts: { asPostgres?: boolean; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: tmp,
      env: { ...process.env, LC_ALL: 'C', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 30_000,
      ...(opts.asPostgres && osUser ? osUser : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
  });
}

async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const resolveRoute: ProxyOptions['resolve'] = async (endpointId) => {
  switch (endpointId) {
    case 'ep-test1':
      return { host: '127.0.0.1', port: pgPort };
    case 'ep-unix':
      // The TCP port is dead: only the socket path can reach postgres.
      return { host: '127.0.0.1', port: deadPort, socketPath: path.join(tmp, `.s.PGSQL.${pgPort}`) };
    case 'ep-dead':
      return { host: '127.0.0.1', port: deadPort };
    case 'ep-broken':
      throw new Error('endpoint ep-broken is suspended by its owner');
    default:
      return undefined;
  }
};

/** Proxies beyond the shared one are for tests that need other options or that stop them. */
async function startProxy(overrides: Partial<ProxyOptions> = {}): Promise<ProxyServer> {
  const p = new ProxyServer({ port: 0, tls: tlsPair, requireTls: true, resolve: resolveRoute, logger, ...overrides });
  extraProxies.push(p);
  await p.start();
  return p;
}

async function pgConnect(config: ClientConfig): Promise<Client> {
  const client = new Client({
    host: '127.0.0.1',
    port: proxy.port,
    user: ROLE,
    password: PASSWORD,
    database: 'ep-test1.postgres',
    ssl: { rejectUnauthorized: false },
    connectionTimeoutMillis: 10_000,
    ...config,
  });
  // A dropped connection must fail the test that caused it, not crash the run.
  client.on('error', () => {});
  openClients.push(client);
  await client.connect();
  return client;
}

async function pgError(config: ClientConfig): Promise<Error & { code?: string }> {
  return pgConnect(config).then(
    () => {
      throw new Error('connection unexpectedly succeeded');
    },
    (err: Error) => err,
  );
}

function psql(url: string, sql: string) {
  return run(path.join(PG_BIN, 'psql'), ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql, url], {
    env: { PGCONNECT_TIMEOUT: '10' },
  });
}

function proxyUrl(db: string, query: string, host = '127.0.0.1', port = proxy.port): string {
  return `postgresql://${ROLE}:${PASSWORD}@${host}:${port}/${db}?${query}`;
}

/** A raw client socket that collects everything it receives. */
class RawClient {
  readonly sock: net.Socket;
  data = Buffer.alloc(0);
  closed = false;
  readonly connected: Promise<void>;

  constructor(port = proxy.port) {
    this.sock = net.connect({ host: '127.0.0.1', port });
    this.sock.on('error', () => {});
    this.sock.on('data', (d: Buffer) => (this.data = Buffer.concat([this.data, d])));
    this.sock.on('close', () => (this.closed = true));
    this.connected = new Promise((resolve) => this.sock.once('connect', () => resolve()));
  }

  async waitBytes(n: number, timeoutMs = 5_000): Promise<Buffer> {
    await waitFor(() => this.data.length >= n || this.closed, timeoutMs, `${n} bytes`);
    return this.data;
  }

  async waitClosed(timeoutMs = 5_000): Promise<void> {
    await waitFor(() => this.closed, timeoutMs, 'socket close');
  }

  /** The fields of the first ErrorResponse received. */
  error(): Record<string, string> {
    const msgs = new MessageFramer().push(this.data);
    const e = msgs.find((m) => m.type === 'E');
    if (!e) throw new Error(`no ErrorResponse in ${this.data.toString('hex')}`);
    return parseErrorFields(e.body);
  }
}

/** SSLRequest, 'S', then a TLS client over the same socket. */
async function rawTls(port = proxy.port): Promise<{ raw: RawClient; tlsSock: tls.TLSSocket; received: () => Buffer }> {
  const raw = new RawClient(port);
  await raw.connected;
  raw.sock.write(serializeSslRequest());
  await raw.waitBytes(1);
  expect(raw.data.toString()).toBe('S');
  raw.sock.removeAllListeners('data');
  let received = Buffer.alloc(0);
  const tlsSock = tls.connect({ socket: raw.sock, rejectUnauthorized: false });
  tlsSock.on('error', () => {});
  tlsSock.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
  await new Promise<void>((resolve) => tlsSock.once('secureConnect', () => resolve()));
  return { raw, tlsSock, received: () => received };
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'lampion-proxy-'));
  if (process.getuid?.() === 0) {
    // Postgres refuses to run as root.
    osUser = {
      uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
      gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
    };
    chownSync(tmp, osUser.uid, osUser.gid);
  }
  dataDir = path.join(tmp, 'data');
  [pgPort, deadPort] = [await freePort(), await freePort()];

  const init = await run(
    path.join(PG_BIN, 'initdb'),
    ['-D', dataDir, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '--no-locale', '-E', 'UTF8', '--no-sync'],
    { asPostgres: true },
  );
  if (init.code !== 0) throw new Error(`initdb failed: ${init.stderr}`);

  postgres = spawn(
    path.join(PG_BIN, 'postgres'),
    [
      '-D', dataDir,
      '-c', 'listen_addresses=127.0.0.1',
      '-c', `port=${pgPort}`,
      '-c', `unix_socket_directories=${tmp}`,
      '-c', 'fsync=off',
      '-c', 'password_encryption=scram-sha-256',
    ],
    { cwd: tmp, stdio: ['ignore', 'ignore', 'pipe'], ...(osUser ?? {}) },
  );
  postgres.stderr!.on('data', (d: Buffer) => (postgresLog += d.toString()));
  await waitFor(
    async () => (await run(path.join(PG_BIN, 'pg_isready'), ['-q', '-h', tmp, '-p', String(pgPort)])).code === 0,
    20_000,
    'postgres to accept connections',
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${postgresLog}`);
  });
  const role = await run(path.join(PG_BIN, 'psql'), [
    '-X', '-q', '-h', tmp, '-p', String(pgPort), '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1',
    '-c', `CREATE ROLE ${ROLE} LOGIN PASSWORD '${PASSWORD}'`,
  ]);
  if (role.code !== 0) throw new Error(`creating role failed: ${role.stderr}`);

  tlsPair = await loadOrCreateTls(path.join(tmp, 'tls'));
  proxy = new ProxyServer({ port: 0, tls: tlsPair, requireTls: true, resolve: resolveRoute, logger });
  await proxy.start();
}, 60_000);

afterAll(async () => {
  await Promise.all(openClients.map((c) => c.end().catch(() => {})));
  await Promise.all([proxy, ...extraProxies].filter(Boolean).map((p) => p.stop()));
  if (postgres && postgres.exitCode === null) {
    const exited = new Promise((resolve) => postgres!.once('exit', resolve));
    await run(path.join(PG_BIN, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'fast', '-w'], { asPostgres: true });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 10_000)))]);
    clearTimeout(timer);
    if (postgres.exitCode === null) postgres.kill('SIGKILL');
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}, 60_000);

describe('routing through TLS', () => {
  it('runs queries with node-postgres using the ep-x.db database form', async () => {
    const c = await pgConnect({});
    const r = await c.query('SELECT current_database() AS db, current_user AS usr, 1 + 1 AS two');
    expect(r.rows[0]).toEqual({ db: 'postgres', usr: ROLE, two: 2 });
    // The client really is on TLS (the proxy-to-compute leg is plain TCP).
    expect((c as unknown as { connection: { stream: tls.TLSSocket } }).connection.stream.encrypted).toBe(true);
    await c.end();
  });

  it('relays large results in both directions without corruption', async () => {
    const c = await pgConnect({});
    const big = 'x'.repeat(4 * 1024 * 1024);
    const r = await c.query('SELECT length($1::text) AS len, md5($1::text) AS h, repeat($2::text, 1000000) AS back', [big, 'ab']);
    expect(r.rows[0].len).toBe(big.length);
    expect(r.rows[0].back).toHaveLength(2_000_000);
    const many = await c.query('SELECT g FROM generate_series(1, 100000) g');
    expect(many.rowCount).toBe(100000);
    await c.end();
  });

  it('routes by options=endpoint=... and by SNI with node-postgres', async () => {
    const viaOptions = await pgConnect({ database: 'postgres', options: '--endpoint=ep-test1 -c application_name=via-opts' });
    const r1 = await viaOptions.query("SELECT current_database() AS db, current_setting('application_name') AS app");
    expect(r1.rows[0]).toEqual({ db: 'postgres', app: 'via-opts' });
    await viaOptions.end();

    const viaSni = await pgConnect({ database: 'postgres', ssl: { rejectUnauthorized: false, servername: 'ep-test1.localhost' } });
    expect((await viaSni.query('SELECT 42 AS n')).rows[0].n).toBe(42);
    await viaSni.end();
  });

  it('works with psql: database form, options form, SNI with verify-full', async () => {
    const a = await psql(proxyUrl('ep-test1.postgres', 'sslmode=require'), 'SELECT current_database() || \',\' || current_user');
    expect(a.stderr).toBe('');
    expect(a.stdout.trim()).toBe(`postgres,${ROLE}`);

    const b = await psql(proxyUrl('postgres', 'sslmode=require&options=endpoint%3Dep-test1'), 'SELECT 7');
    expect(b.stderr).toBe('');
    expect(b.stdout.trim()).toBe('7');

    // The self-signed certificate covers *.localhost, so full verification works with SNI routing.
    const c = await psql(
      proxyUrl('postgres', `hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert=${path.join(tmp, 'tls', 'proxy.crt')}`, 'ep-test1.localhost'),
      'SELECT 8',
    );
    expect(c.stderr).toBe('');
    expect(c.stdout.trim()).toBe('8');
  });

  it('passes authentication through: a wrong password is refused by postgres itself', async () => {
    const err = await pgError({ password: 'wrong' });
    expect(err.message).toMatch(/password authentication failed for user "lampion_app"/);
    const p = await psql(`postgresql://${ROLE}:wrong@127.0.0.1:${proxy.port}/ep-test1.postgres?sslmode=require`, 'SELECT 1');
    expect(p.code).not.toBe(0);
    expect(p.stderr).toMatch(/password authentication failed/);
  });
});

describe('unix socket route', () => {
  it('relays over the socket a route names, with large results intact', async () => {
    const c = await pgConnect({ database: 'ep-unix.postgres' });
    const r = await c.query("SELECT inet_client_addr() IS NULL AS over_socket, md5(repeat('ab', 1000000)) AS h, length(repeat('x', 3000000)) AS n");
    expect(r.rows[0]).toEqual({ over_socket: true, h: expect.stringMatching(/^[0-9a-f]{32}$/), n: 3_000_000 });
    await c.end();
  });
});

describe('rejections', () => {
  it('refuses a reserved role before routing', async () => {
    const resolve = jest.fn(resolveRoute);
    const p = await startProxy({ reservedRoles: [ROLE], resolve });
    const err = await pgError({ port: p.port });
    expect(err.code).toBe('28000');
    expect(err.message).toBe(`role "${ROLE}" cannot connect through the proxy`);
    expect(resolve).not.toHaveBeenCalled();
  });

  it('reports an unknown endpoint quickly', async () => {
    const started = Date.now();
    const err = await pgError({ database: 'ep-nope.postgres' });
    expect(err.message).toBe('endpoint "ep-nope" not found');
    expect(err.code).toBe('08004');
    expect(Date.now() - started).toBeLessThan(3_000);

    const p = await psql(proxyUrl('ep-nope.postgres', 'sslmode=require'), 'SELECT 1');
    expect(p.code).not.toBe(0);
    expect(p.stderr).toMatch(/endpoint "ep-nope" not found/);
    expect(p.ms).toBeLessThan(5_000);
  });

  it('explains how to name an endpoint when none is given', async () => {
    const err = await pgError({ database: 'postgres' });
    expect(err.code).toBe('08004');
    expect(err.message).toMatch(/endpoint ID is not specified/);
    expect(err.message).toMatch(/ep-xxx\.<dbname>/);
  });

  it('refuses clients without TLS when TLS is required', async () => {
    const err = await pgError({ ssl: false });
    expect(err.code).toBe('28000');
    expect(err.message).toMatch(/sslmode=require/);

    const p = await psql(proxyUrl('ep-test1.postgres', 'sslmode=disable'), 'SELECT 1');
    expect(p.code).not.toBe(0);
    expect(p.stderr).toMatch(/sslmode=require/);
  });

  it('reports a compute that refuses connections as unavailable', async () => {
    const err = await pgError({ database: 'ep-dead.postgres' });
    expect(err.code).toBe('57P03');
    expect(err.message).toMatch(/compute unavailable/);
    expect(err.message).not.toMatch(String(deadPort));
  });

  it('passes the message of a failing resolve on', async () => {
    const err = await pgError({ database: 'ep-broken.postgres' });
    expect(err.code).toBe('57P03');
    expect(err.message).toBe('endpoint ep-broken is suspended by its owner');
  });

  it('rejects a startup packet over 10000 bytes without waiting for it', async () => {
    const raw = new RawClient();
    await raw.connected;
    const header = Buffer.alloc(8);
    header.writeInt32BE(20_000, 0);
    header.writeInt32BE(196608, 4);
    raw.sock.write(header);
    await raw.waitClosed();
    expect(raw.error()).toMatchObject({ S: 'FATAL', C: '08P01', M: 'invalid length of startup packet' });
  });

  it('refuses plaintext bytes pipelined after SSLRequest (CVE-2021-23214)', async () => {
    const raw = new RawClient();
    await raw.connected;
    raw.sock.write(Buffer.concat([serializeSslRequest(), serializeStartupMessage({ user: ROLE, database: 'ep-test1.postgres' })]));
    await raw.waitClosed();
    expect(raw.error().M).toMatch(/unencrypted data after SSL request/);
  });

  it('closes a direct-TLS client (sslnegotiation=direct) without answering in clear text', async () => {
    const raw = new RawClient();
    await raw.connected;
    const t = tls.connect({ socket: raw.sock, rejectUnauthorized: false, ALPNProtocols: ['postgresql'] });
    const failed = new Promise<Error>((resolve) => t.once('error', resolve));
    await raw.waitClosed();
    expect(raw.data.length).toBe(0);
    expect((await failed).message).toMatch(/socket disconnected|ECONNRESET/);
  });

  it("answers GSSENCRequest with 'N' and carries on with SSLRequest", async () => {
    const raw = new RawClient();
    await raw.connected;
    raw.sock.write(serializeGssEncRequest());
    await raw.waitBytes(1);
    expect(raw.data.toString()).toBe('N');
    raw.sock.write(serializeSslRequest());
    await raw.waitBytes(2);
    expect(raw.data.toString()).toBe('NS');
    raw.sock.destroy();
  });

  it('closes clients that never send a startup packet', async () => {
    const p = await startProxy({ startupTimeoutMs: 300 });
    const raw = new RawClient(p.port);
    await raw.connected;
    const started = Date.now();
    await raw.waitClosed(3_000);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(raw.error()).toMatchObject({ C: '08006', M: 'timeout expired waiting for startup packet' });

    // Stuck in the TLS handshake: no ErrorResponse possible, just a close.
    const hs = new RawClient(p.port);
    await hs.connected;
    hs.sock.write(serializeSslRequest());
    await hs.waitClosed(3_000);
    expect(hs.data.toString()).toBe('S');
    await waitFor(() => p.activeConnections === 0, 3_000, 'connections to drain');
  });

  it('never hangs when resolve never answers', async () => {
    const p = await startProxy({ startupTimeoutMs: 500, resolve: () => new Promise(() => {}) });
    const started = Date.now();
    const err = await pgError({ port: p.port });
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(err.code).toBe('57P03');
  });
});

describe('cancel', () => {
  async function sleepingClient(database = 'ep-test1.postgres'): Promise<{ c: Client; query: Promise<unknown>; pid: number; secret: number }> {
    const c = await pgConnect({ database });
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    const query = c.query('SELECT pg_sleep(30)').then(
      () => 'finished',
      (err: Error) => err,
    );
    const watcher = await pgConnect({});
    await waitFor(
      async () =>
        (await watcher.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", [processID])).rowCount === 1,
      10_000,
      'the sleep to start',
    );
    await watcher.end();
    return { c, query, pid: processID, secret: secretKey };
  }

  it('forwards a plain CancelRequest to the right compute', async () => {
    const { c, query, pid, secret } = await sleepingClient();
    const started = Date.now();
    const raw = new RawClient();
    await raw.connected;
    raw.sock.write(serializeCancelRequest(pid, secret));
    await raw.waitClosed();
    const result = await query;
    expect(result).toBeInstanceOf(Error);
    expect((result as Error).message).toMatch(/canceling statement due to user request/);
    expect(Date.now() - started).toBeLessThan(5_000);
    // The session survives a cancelled statement.
    expect((await c.query('SELECT 1 AS ok')).rows[0].ok).toBe(1);
    await c.end();
  });

  it('forwards a CancelRequest sent over TLS (libpq 17 style)', async () => {
    const { c, query, pid, secret } = await sleepingClient();
    const { raw, tlsSock } = await rawTls();
    tlsSock.write(serializeCancelRequest(pid, secret));
    await raw.waitClosed();
    expect(((await query) as Error).message).toMatch(/canceling statement due to user request/);
    await c.end();
  });

  it('forwards a CancelRequest to a compute reached over its unix socket', async () => {
    const { c, query, pid, secret } = await sleepingClient('ep-unix.postgres');
    const raw = new RawClient();
    await raw.connected;
    raw.sock.write(serializeCancelRequest(pid, secret));
    await raw.waitClosed();
    expect(((await query) as Error).message).toMatch(/canceling statement due to user request/);
    await c.end();
  });

  it('drops cancel requests with unknown keys silently', async () => {
    const c = await pgConnect({});
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    const query = c.query('SELECT pg_sleep(1.5) AS slept');
    await new Promise((r) => setTimeout(r, 300));
    const raw = new RawClient();
    await raw.connected;
    raw.sock.write(serializeCancelRequest(processID, (secretKey ^ 0x5a5a) | 0));
    await raw.waitClosed();
    expect(raw.data.length).toBe(0);
    await expect(query).resolves.toMatchObject({ rowCount: 1 });
    await c.end();
  });

  it('forgets the keys of closed connections', async () => {
    const c = await pgConnect({});
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    const map = (proxy as unknown as { cancelTargets: Map<string, unknown> }).cancelTargets;
    expect([...map.keys()].some((k) => k.startsWith(`${processID}:`))).toBe(true);
    await c.end();
    await waitFor(() => ![...map.keys()].some((k) => k.startsWith(`${processID}:`)), 3_000, 'key removal');
    expect(secretKey).toBeDefined();
  });
});

describe('robustness', () => {
  it('accepts a startup packet delivered one byte at a time', async () => {
    const p = await startProxy({ requireTls: false });
    const raw = new RawClient(p.port);
    await raw.connected;
    const startup = serializeStartupMessage({ user: ROLE, database: 'ep-test1.postgres' });
    for (const byte of startup) {
      raw.sock.write(Buffer.from([byte]));
      await new Promise((r) => setTimeout(r, 2));
    }
    // postgres answers with AuthenticationSASL (R, code 10) listing SCRAM-SHA-256.
    await raw.waitBytes(9);
    const [first] = new MessageFramer().push(raw.data);
    expect(first?.type).toBe('R');
    expect(first?.body.readInt32BE(0)).toBe(10);
    expect(first?.body.toString()).toContain('SCRAM-SHA-256');
    raw.sock.destroy();

    // And a full plaintext session works when TLS is optional.
    const c = await pgConnect({ port: p.port, ssl: false });
    expect((await c.query('SELECT 3 AS n')).rows[0].n).toBe(3);
    await c.end();
  });

  it('survives clients that reset at every stage of the startup', async () => {
    const before = proxy.activeConnections;

    const a = new RawClient();
    await a.connected;
    a.sock.write(Buffer.from([0, 0, 0]));
    a.sock.resetAndDestroy();

    const b = new RawClient();
    await b.connected;
    b.sock.write(serializeSslRequest());
    await b.waitBytes(1);
    b.sock.resetAndDestroy();

    const c = await rawTls();
    c.tlsSock.write(serializeStartupMessage({ user: ROLE, database: 'ep-test1.postgres' }).subarray(0, 10));
    await new Promise((r) => setTimeout(r, 50));
    c.raw.sock.resetAndDestroy();

    // Reset while the compute is waiting for the SCRAM exchange.
    const d = await rawTls();
    d.tlsSock.write(serializeStartupMessage({ user: ROLE, database: 'ep-test1.postgres' }));
    await waitFor(() => d.received().length > 0, 5_000, 'AuthenticationSASL');
    expect(d.received()[0]).toBe('R'.charCodeAt(0));
    d.raw.sock.resetAndDestroy();

    // Reset while the proxy is connecting to the compute.
    const e = await rawTls();
    e.tlsSock.write(serializeStartupMessage({ user: ROLE, database: 'ep-test1.postgres' }));
    e.raw.sock.resetAndDestroy();

    await waitFor(() => proxy.activeConnections === before, 5_000, 'connections to drain');
    expect(proxy.listening).toBe(true);
    const ok = await pgConnect({});
    expect((await ok.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    await ok.end();
  });

  it('counts connections and returns to zero when clients leave', async () => {
    const p = await startProxy({});
    const clients = await Promise.all([1, 2, 3].map(() => pgConnect({ port: p.port })));
    expect(p.activeConnections).toBe(3);
    await Promise.all(clients.map((c) => c.end()));
    await waitFor(() => p.activeConnections === 0, 3_000, 'connections to close');
  });

  it('stop() closes the listener and every open connection', async () => {
    const p = await startProxy({});
    const port = p.port;
    const c = await pgConnect({ port });
    const ended = new Promise((resolve) => c.once('end', resolve));
    const half = new RawClient(port);
    await half.connected;
    await waitFor(() => p.activeConnections === 2, 3_000, 'both connections');

    await p.stop();
    expect(p.listening).toBe(false);
    expect(p.activeConnections).toBe(0);
    await ended;
    await half.waitClosed();
    const refused = await pgError({ port });
    expect(refused.message).toMatch(/ECONNREFUSED/);
    // The compute side was closed too: postgres no longer has that backend.
    const check = await pgConnect({});
    await waitFor(
      async () => (await check.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1", [ROLE])).rows[0].n === 1,
      5_000,
      'the backend to exit',
    );
    await check.end();
  });
});

describe('loadOrCreateTls', () => {
  it('reuses the generated pair and honours explicit files', async () => {
    const dir = path.join(tmp, 'tls');
    const again = await loadOrCreateTls(dir);
    expect(again).toEqual(tlsPair);
    const explicit = await loadOrCreateTls('/nonexistent', path.join(dir, 'proxy.crt'), path.join(dir, 'proxy.key'));
    expect(explicit).toEqual(tlsPair);
    const keyMode = (await import('node:fs')).statSync(path.join(dir, 'proxy.key')).mode & 0o777;
    expect(keyMode).toBe(0o600);
    const cert = new (await import('node:crypto')).X509Certificate(tlsPair.cert);
    expect(cert.subjectAltName).toBe('DNS:localhost, DNS:*.localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    await expect(loadOrCreateTls(dir, path.join(dir, 'proxy.crt'))).rejects.toThrow(/together/);
  });
});
