import net from 'node:net';
import tls from 'node:tls';

import type { Logger } from 'pino';

import {
  type ErrorResponseInit,
  type ParsedPacket,
  type StartupPacket,
  MessageFramer,
  ProtocolError,
  buildErrorResponse,
  cancelKey,
  parseBackendKeyData,
  parseStartupPacket,
  routeEndpoint,
  serializeStartupMessage,
} from './protocol';

export interface ProxyRoute {
  host: string;
  port: number;
  /**
   * The compute's unix socket, when the proxy shares its host: relaying over it costs the proxy
   * and the compute less CPU per message than loopback TCP. host/port stay for logs.
   */
  socketPath?: string;
}

/** Where net.connect reaches a route. */
function connectTarget(route: ProxyRoute): { path: string } | { host: string; port: number } {
  return route.socketPath ? { path: route.socketPath } : { host: route.host, port: route.port };
}

export interface ProxyOptions {
  /** 0 = ephemeral. */
  port: number;
  /** Default '127.0.0.1'. */
  host?: string;
  tls: { key: string | Buffer; cert: string | Buffer };
  /** Refuse clients that do not start with SSLRequest (CancelRequest stays allowed: libpq < 17 always sends it in clear). */
  requireTls: boolean;
  /**
   * undefined => unknown endpoint. May wake a compute, so it is allowed to take a while. A thrown
   * ProxyRefusal carries its own SQLSTATE (e.g. an allowlist refusal); other errors are 57P03.
   */
  resolve(endpointId: string, client: { address: string }): Promise<ProxyRoute | undefined>;
  /**
   * Roles refused before routing, whatever the compute would say: the platform's own superuser,
   * which the compute trusts on its private socket.
   */
  reservedRoles?: readonly string[];
  /** A relayed session ended (for last-activity tracking). */
  onSessionEnd?(endpointId: string): void;
  /**
   * Bytes relayed for an endpoint since its last report, both directions (usage metering):
   * every `transferReportMs` for open sessions, and once when a session ends.
   */
  onTransfer?(endpointId: string, bytes: number): void;
  /** Default 10 s. */
  transferReportMs?: number;
  logger: Logger;
  /** From accept until bytes flow to the compute (TLS, startup packet, resolve, connect). Default 30 s. */
  startupTimeoutMs?: number;
}

const DEFAULT_STARTUP_TIMEOUT_MS = 30_000;
/** How long a socket we ended may linger before we stop waiting for the peer's FIN. */
const LINGER_MS = 5_000;
const CANCEL_FORWARD_TIMEOUT_MS = 5_000;
/**
 * Every compute socket reads into this one buffer (net's `onread`) instead of a fresh 64 KiB
 * allocation per read; the read callback copies out what it relays before returning, and the
 * process is single-threaded, so sharing it is safe.
 */
/** How long routing keeps trying a compute whose socket refuses or is not there yet. */
const COMPUTE_CONNECT_RETRY_MS = 5000;
const COMPUTE_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

const NO_ENDPOINT_MESSAGE =
  'endpoint ID is not specified. Use a database name of the form "ep-xxx.<dbname>", ' +
  'connect with a host name of the form "ep-xxx.<domain>" (TLS with SNI), ' +
  'or pass options=endpoint%3Dep-xxx in the connection string';

/** An expected refusal with the SQLSTATE the client should see. */
export class ProxyRefusal extends Error {
  constructor(
    message: string,
    readonly sqlstate: string,
  ) {
    super(message);
  }
}

interface CancelTarget {
  route: ProxyRoute;
  owner: ClientConnection;
}

export class ProxyServer {
  private server?: net.Server;
  private readonly secureContext: tls.SecureContext;
  private readonly connections = new Set<ClientConnection>();
  private readonly cancelSockets = new Set<net.Socket>();
  private readonly cancelTargets = new Map<string, CancelTarget>();
  private nextId = 1;
  private transferTimer?: NodeJS.Timeout;
  readonly log: Logger;

  constructor(readonly options: ProxyOptions) {
    // Built once so a bad key/cert fails the constructor instead of every handshake.
    this.secureContext = tls.createSecureContext({ key: options.tls.key, cert: options.tls.cert });
    this.log = options.logger;
  }

  get port(): number {
    const addr = this.server?.address();
    if (!addr || typeof addr === 'string') throw new Error('proxy is not listening');
    return addr.port;
  }

  get listening(): boolean {
    return this.server?.listening ?? false;
  }

  /** Client connections currently open, in any phase. */
  get activeConnections(): number {
    return this.connections.size;
  }

  async start(): Promise<void> {
    if (this.server) throw new Error('proxy already started');
    const server = net.createServer({ noDelay: true }, (sock) => this.accept(sock));
    // Per-connection failures are handled on the sockets; this only sees listener-level trouble.
    server.on('error', (err) => this.log.error({ err }, 'proxy listener error'));
    this.server = server;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.options.port, this.options.host ?? '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      this.server = undefined;
      throw err;
    }
    this.log.info({ port: this.port, host: this.options.host ?? '127.0.0.1' }, 'proxy listening');
    if (this.options.onTransfer) {
      this.transferTimer = setInterval(() => this.reportTransfer(), this.options.transferReportMs ?? 10_000);
      this.transferTimer.unref();
    }
  }

  /** Sessions' relayed bytes since their last report, summed per endpoint. */
  private reportTransfer(): void {
    const byEndpoint = new Map<string, number>();
    for (const c of this.connections) {
      const t = c.takeTransfer();
      if (t) byEndpoint.set(t.endpointId, (byEndpoint.get(t.endpointId) ?? 0) + t.bytes);
    }
    for (const [endpointId, bytes] of byEndpoint) this.options.onTransfer?.(endpointId, bytes);
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    clearInterval(this.transferTimer);
    const conns = [...this.connections];
    for (const c of conns) c.destroy();
    for (const s of this.cancelSockets) s.destroy();
    await Promise.all([closed, ...conns.map((c) => c.closed)]);
    this.server = undefined;
    this.log.info('proxy stopped');
  }

  private accept(sock: net.Socket): void {
    if (!this.server?.listening) {
      sock.destroy();
      return;
    }
    const conn = new ClientConnection(this, this.nextId++, sock);
    this.connections.add(conn);
    conn.start();
  }

  /** @internal */
  get startupTimeoutMs(): number {
    return this.options.startupTimeoutMs ?? DEFAULT_STARTUP_TIMEOUT_MS;
  }

  /** @internal */
  get tlsContext(): tls.SecureContext {
    return this.secureContext;
  }

  /** @internal */
  forget(conn: ClientConnection, keys: readonly string[]): void {
    this.connections.delete(conn);
    for (const k of keys) {
      // A newer connection may have reused the key (pid reuse on another compute): keep its entry.
      if (this.cancelTargets.get(k)?.owner === conn) this.cancelTargets.delete(k);
    }
  }

  /** @internal */
  registerCancelKey(key: string, target: CancelTarget): void {
    this.cancelTargets.set(key, target);
  }

  /** @internal */
  forwardCancel(connId: number, pid: number, secret: Buffer, raw: Buffer): void {
    const target = this.cancelTargets.get(cancelKey(pid, secret));
    if (!target) {
      // Same as postgres: an unknown key gets no answer, so keys cannot be probed.
      this.log.debug({ connId, pid }, 'cancel request for unknown backend dropped');
      return;
    }
    const { host, port } = target.route;
    const sock = net.connect(connectTarget(target.route));
    this.cancelSockets.add(sock);
    sock.setTimeout(CANCEL_FORWARD_TIMEOUT_MS, () => sock.destroy());
    sock.on('error', (err) => this.log.warn({ connId, pid, err }, 'forwarding cancel request failed'));
    sock.on('close', () => this.cancelSockets.delete(sock));
    sock.on('connect', () => {
      this.log.debug({ connId, pid, host, port }, 'cancel request forwarded');
      sock.end(raw);
    });
    // Postgres never replies to a cancel request; drain in case it ever does.
    sock.resume();
  }
}

type Phase = 'startup' | 'handshake' | 'routing' | 'relay' | 'closing' | 'closed';

class ClientConnection {
  private client: net.Socket;
  private compute?: net.Socket;
  private phase: Phase = 'startup';
  private buffered: Buffer = Buffer.alloc(0);
  private sslDone = false;
  private gssDone = false;
  private startupTimer?: NodeJS.Timeout;
  private lingerTimer?: NodeJS.Timeout;
  private readonly cancelKeys: string[] = [];
  /** Parses the compute's bytes until the first ReadyForQuery, for BackendKeyData; then dropped. */
  private framer?: MessageFramer;
  private cancelRoute?: ProxyRoute;
  private relayedEndpoint?: string;
  /** Bytes relayed (both ways) since the last transfer report. */
  private unreportedBytes = 0;
  private readonly log: Logger;
  private readonly onStartupData = (chunk: Buffer) => this.handleStartupData(chunk);
  private markClosed!: () => void;
  /** Settles once the connection is fully torn down and forgotten by the proxy. */
  readonly closed = new Promise<void>((resolve) => (this.markClosed = resolve));

  constructor(
    private readonly proxy: ProxyServer,
    readonly id: number,
    private readonly raw: net.Socket,
  ) {
    this.client = raw;
    this.log = proxy.log.child({ connId: id });
  }

  start(): void {
    const { raw } = this;
    this.log.debug({ remote: `${raw.remoteAddress}:${raw.remotePort}` }, 'client connected');
    raw.setKeepAlive(true, 60_000);
    raw.on('error', (err) => this.onClientError(err));
    raw.on('close', () => this.finish());
    this.startupTimer = setTimeout(() => this.onStartupTimeout(), this.proxy.startupTimeoutMs);
    raw.on('data', this.onStartupData);
  }

  destroy(): void {
    this.compute?.destroy();
    this.client.destroy();
    this.raw.destroy();
  }

  private onClientError(err: Error): void {
    // Resets are routine (killed psql, dropped Wi-Fi); they must never reach the process.
    this.log.debug({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code } }, 'client socket error');
    this.destroy();
  }

  /** Bytes relayed since the last call, with the endpoint (undefined when none). */
  takeTransfer(): { endpointId: string; bytes: number } | undefined {
    if (!this.relayedEndpoint || this.unreportedBytes === 0) return undefined;
    const bytes = this.unreportedBytes;
    this.unreportedBytes = 0;
    return { endpointId: this.relayedEndpoint, bytes };
  }

  private finish(): void {
    if (this.phase === 'closed') return;
    if (this.relayedEndpoint) {
      const t = this.takeTransfer();
      if (t) this.proxy.options.onTransfer?.(t.endpointId, t.bytes);
      this.proxy.options.onSessionEnd?.(this.relayedEndpoint);
    }
    this.phase = 'closed';
    clearTimeout(this.startupTimer);
    clearTimeout(this.lingerTimer);
    this.compute?.destroy();
    // The TLS socket owns the fd once wrapped; destroying the raw socket too is what lets
    // net.Server account for the connection, which server.close() waits on.
    this.client.destroy();
    this.raw.destroy();
    this.proxy.forget(this, this.cancelKeys);
    this.log.debug('client connection closed');
    this.markClosed();
  }

  private handleStartupData(chunk: Buffer): void {
    if (this.phase !== 'startup') return;
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    if (!this.sslDone && this.buffered[0] === 0x16) {
      // A TLS record instead of a startup packet: libpq 17's sslnegotiation=direct. An
      // ErrorResponse in clear text would only confuse a TLS client.
      this.log.info('client attempted direct TLS negotiation (sslnegotiation=direct), which is not supported');
      this.destroy();
      return;
    }
    let parsed: ParsedPacket | undefined;
    try {
      parsed = parseStartupPacket(this.buffered);
    } catch (err) {
      // Anything thrown here would otherwise escape from a socket 'data' handler and kill the process.
      const sqlstate = err instanceof ProtocolError ? err.sqlstate : '08P01';
      this.fail({ code: sqlstate, message: err instanceof Error ? err.message : String(err) });
      return;
    }
    if (!parsed) return;
    const rest = this.buffered.subarray(parsed.length);
    this.buffered = Buffer.alloc(0);
    this.handlePacket(parsed.packet, rest);
  }

  private handlePacket(packet: StartupPacket, rest: Buffer): void {
    switch (packet.kind) {
      case 'ssl':
        if (this.sslDone) {
          this.fail({ code: '08P01', message: 'unexpected SSLRequest inside an encrypted connection' });
          return;
        }
        if (rest.length > 0) {
          // CVE-2021-23214: bytes sent before the handshake could have been injected by a
          // man in the middle and must not be treated as if they had come over TLS.
          this.fail({ code: '08P01', message: 'received unencrypted data after SSL request' });
          return;
        }
        this.upgradeToTls();
        return;
      case 'gssenc':
        if (this.sslDone || this.gssDone) {
          this.fail({ code: '08P01', message: 'unexpected GSSENCRequest' });
          return;
        }
        this.gssDone = true;
        // 'N' tells libpq to fall back to SSLRequest or plain startup on the same socket.
        this.client.write('N');
        if (rest.length) this.handleStartupData(rest);
        return;
      case 'cancel':
        this.client.off('data', this.onStartupData);
        this.proxy.forwardCancel(this.id, packet.pid, packet.secret, packet.raw);
        this.closeGracefully();
        return;
      case 'startup':
        this.client.off('data', this.onStartupData);
        // Whatever was pipelined after the startup packet belongs to the compute.
        this.route(packet.params, packet.protocolVersion, Buffer.from(rest)).catch((err: unknown) => {
          this.log.error({ err }, 'unexpected error while routing a connection');
          this.fail({ code: 'XX000', message: 'internal proxy error' });
        });
        return;
    }
  }

  private upgradeToTls(): void {
    this.raw.off('data', this.onStartupData);
    this.phase = 'handshake';
    this.raw.write('S');
    // Wrapped in the same tick as the 'S': the ClientHello cannot have been read into the raw
    // socket's JS buffer yet, where the TLS layer (which reads the fd directly) would miss it.
    const sock = new tls.TLSSocket(this.raw, { isServer: true, secureContext: this.proxy.tlsContext });
    this.client = sock;
    this.sslDone = true;
    sock.on('error', (err) => this.onClientError(err));
    sock.on('close', () => this.finish());
    sock.once('secure', () => {
      if (this.phase !== 'handshake') return;
      this.phase = 'startup';
      this.log.debug({ servername: sock.servername || undefined, protocol: sock.getProtocol() }, 'tls established');
    });
    sock.on('data', this.onStartupData);
  }

  private async route(params: Map<string, string>, protocolVersion: number, pipelined: Buffer): Promise<void> {
    this.phase = 'routing';
    const client = this.client;
    // Hold further client bytes in the kernel until the compute can take them.
    client.pause();

    if (this.proxy.options.requireTls && !this.sslDone) {
      this.fail({
        code: '28000',
        message: 'connection is insecure (try using sslmode=require)',
        hint: 'this proxy only accepts TLS connections; set sslmode=require in the connection string',
      });
      return;
    }
    const user = params.get('user');
    if (!user) {
      this.fail({ code: '28000', message: 'no PostgreSQL user name specified in startup packet' });
      return;
    }
    if (this.proxy.options.reservedRoles?.includes(user)) {
      this.fail({ code: '28000', message: `role "${user}" cannot connect through the proxy` });
      return;
    }
    const sni = client instanceof tls.TLSSocket ? client.servername : undefined;
    const route = routeEndpoint({ database: params.get('database'), options: params.get('options'), sni, user });
    if (!route) {
      this.fail({ code: '08004', message: NO_ENDPOINT_MESSAGE });
      return;
    }
    const log = this.log.child({ endpointId: route.endpointId, user });

    let target: ProxyRoute | undefined;
    try {
      target = await this.proxy.options.resolve(route.endpointId, { address: this.raw.remoteAddress ?? '' });
    } catch (err) {
      log.warn({ err }, 'endpoint resolution failed');
      this.fail({ code: err instanceof ProxyRefusal ? err.sqlstate : '57P03', message: err instanceof Error ? err.message : String(err) });
      return;
    }
    if (this.phase !== 'routing') return; // client left or timed out while we were resolving
    if (!target) {
      log.info('unknown endpoint');
      this.fail({ code: '08004', message: `endpoint "${route.endpointId}" not found` });
      return;
    }

    const rewritten = new Map(params);
    if (route.database !== undefined) rewritten.set('database', route.database);
    if (route.options !== undefined) rewritten.set('options', route.options);
    else rewritten.delete('options');
    const startup = serializeStartupMessage(rewritten, protocolVersion);

    const routedAt = Date.now();
    const connect = (): void => {
      const compute = net.connect({
        ...connectTarget(target),
        noDelay: true,
        keepAlive: true,
        keepAliveInitialDelay: 60_000,
        onread: { buffer: COMPUTE_READ_BUFFER, callback: (n) => this.onComputeData(n) },
      });
      this.compute = compute;
      compute.on('error', (err: NodeJS.ErrnoException) => {
        if (this.phase === 'routing') {
          // A compute the catalog calls running may still be coming up (just started by the host
          // worker after a restart): its socket appears within moments, so try again briefly.
          if ((err.code === 'ENOENT' || err.code === 'ECONNREFUSED') && Date.now() - routedAt < COMPUTE_CONNECT_RETRY_MS) {
            compute.destroy();
            setTimeout(() => {
              if (this.phase === 'routing') connect();
            }, 100).unref();
            return;
          }
          log.warn({ err, host: target.host, port: target.port, socketPath: target.socketPath }, 'cannot reach compute');
          // Host and port stay in the log: they are internal addresses.
          this.fail({ code: '57P03', message: 'compute unavailable' });
        } else {
          log.debug({ err }, 'compute socket error');
          this.destroy();
        }
      });
      compute.once('connect', () => {
        if (this.phase !== 'routing') {
          compute.destroy();
          return;
        }
        log.debug({ host: target.host, port: target.port, socketPath: target.socketPath, database: route.database }, 'relaying to compute');
        this.relay(client, compute, target, startup, pipelined, route.endpointId);
      });
    };
    connect();
  }

  private relay(client: net.Socket, compute: net.Socket, target: ProxyRoute, startup: Buffer, pipelined: Buffer, endpointId: string): void {
    this.phase = 'relay';
    this.relayedEndpoint = endpointId;
    clearTimeout(this.startupTimer);
    // Until the first ReadyForQuery the server's bytes are also parsed, only to learn the
    // BackendKeyData that later CancelRequests will quote. Authentication is relayed blind.
    this.framer = new MessageFramer();
    this.cancelRoute = target;
    compute.write(startup);
    if (pipelined.length) compute.write(pipelined);

    // Relayed by hand rather than with pipe(): one message each way per query is the common
    // case, and every layer per chunk counts there. Backpressure both ways: a side whose peer
    // cannot take more is paused until the peer drains.
    let clientPaused = false;
    client.on('data', (chunk: Buffer) => {
      this.unreportedBytes += chunk.length;
      if (compute.write(chunk) || clientPaused) return;
      clientPaused = true;
      client.pause();
      compute.once('drain', () => {
        clientPaused = false;
        client.resume();
      });
    });
    // Each side's end is passed on, as pipe() did; the reader of an onread socket still gets 'end'.
    client.once('end', () => compute.end());
    compute.once('end', () => client.end());
    compute.resume();
    client.resume();

    compute.on('close', () => {
      if (this.phase === 'closed') return;
      // The client was ended after the compute's last bytes; a client that never closes its
      // side must not keep the connection around forever.
      this.lingerTimer = setTimeout(() => this.destroy(), LINGER_MS);
      this.lingerTimer.unref();
    });
  }

  /** The compute's bytes, `n` of them at the start of COMPUTE_READ_BUFFER, valid only during this call. */
  private onComputeData(n: number): boolean {
    const compute = this.compute;
    if (this.phase !== 'relay' || !compute) return true; // nothing is expected before relay(); after, we are closing
    const chunk = Buffer.from(COMPUTE_READ_BUFFER.subarray(0, n));
    this.unreportedBytes += n;
    if (this.framer) this.watchStartup(chunk);
    if (this.client.write(chunk)) return true;
    compute.pause();
    this.client.once('drain', () => compute.resume());
    return true;
  }

  private watchStartup(chunk: Buffer): void {
    let messages;
    try {
      messages = this.framer!.push(chunk);
    } catch (err) {
      this.log.warn({ err }, 'could not parse compute startup response; cancel will not work for this session');
      this.framer = undefined;
      return;
    }
    for (const msg of messages) {
      if (msg.type === 'K') {
        const key = parseBackendKeyData(msg);
        if (key) {
          const k = cancelKey(key.pid, key.secret);
          this.cancelKeys.push(k);
          this.proxy.registerCancelKey(k, { route: this.cancelRoute!, owner: this });
        }
      } else if (msg.type === 'Z') {
        this.framer = undefined;
        return;
      }
    }
  }

  private onStartupTimeout(): void {
    if (this.phase === 'handshake') {
      this.log.info('tls handshake timed out');
      this.destroy();
    } else if (this.phase === 'startup') {
      this.log.info('timed out waiting for startup packet');
      this.fail({ code: '08006', message: 'timeout expired waiting for startup packet' });
    } else if (this.phase === 'routing') {
      this.log.warn('timed out routing to compute');
      this.fail({ code: '57P03', message: 'compute unavailable: timed out connecting to the endpoint' });
    }
  }

  /** Sends a FATAL ErrorResponse and closes, the way postgres rejects a connection. */
  private fail(e: ErrorResponseInit): void {
    if (this.phase === 'closing' || this.phase === 'closed') return;
    this.log.debug({ sqlstate: e.code, message: e.message }, 'rejecting connection');
    this.compute?.destroy();
    this.closeGracefully(buildErrorResponse(e));
  }

  private closeGracefully(lastWords?: Buffer): void {
    if (this.phase === 'closing' || this.phase === 'closed') return;
    this.phase = 'closing';
    clearTimeout(this.startupTimer);
    const client = this.client;
    client.off('data', this.onStartupData);
    // Keep reading: closing with unread bytes makes the kernel send RST, which can make the
    // client lose the ErrorResponse.
    client.resume();
    if (lastWords) client.end(lastWords);
    else client.end();
    this.lingerTimer = setTimeout(() => this.destroy(), LINGER_MS);
    this.lingerTimer.unref();
  }
}
