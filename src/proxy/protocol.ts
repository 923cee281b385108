/**
 * Pure helpers for the startup phase of the PostgreSQL wire protocol (v3), as seen by a proxy.
 * Nothing here touches a socket, so every byte-level decision can be unit-tested.
 *
 * Reference: https://www.postgresql.org/docs/current/protocol-message-formats.html
 */

import { ENDPOINT_ID_RE } from '../domain/ids';

export { ENDPOINT_ID_RE };
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;
/** Protocol 3.0 (major 3 << 16 | minor 0). */
export const PROTOCOL_3_0 = 196608;
/** Same limit as postgres' MAX_STARTUP_PACKET_LENGTH; anything larger is hostile or broken. */
export const MAX_STARTUP_PACKET_LENGTH = 10000;

export class ProtocolError extends Error {
  constructor(
    message: string,
    readonly sqlstate = '08P01',
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}

export type StartupPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | {
      kind: 'cancel';
      pid: number;
      /** 4 bytes up to protocol 3.1; protocol 3.2 (PG 18) allows up to 256. */
      secret: Buffer;
      /** The exact bytes received, forwarded untouched to the compute. */
      raw: Buffer;
    }
  | {
      kind: 'startup';
      /** Kept so a 3.x client talking to a newer server can still negotiate a minor version. */
      protocolVersion: number;
      params: Map<string, string>;
      raw: Buffer;
    };

export interface ParsedPacket {
  packet: StartupPacket;
  /** Bytes of the input the packet occupied; whatever follows belongs to the next message. */
  length: number;
}

/**
 * Parses one startup-phase packet (no type byte: Int32 length, Int32 code, payload) from the
 * front of `buf`. Returns undefined while the packet is incomplete, so callers can keep
 * accumulating; throws ProtocolError as soon as the bytes can be known to be invalid, so a
 * hostile length is refused without waiting for 2 GB to arrive.
 */
export function parseStartupPacket(buf: Buffer): ParsedPacket | undefined {
  if (buf.length < 4) return undefined;
  const length = buf.readInt32BE(0);
  if (length < 8 || length > MAX_STARTUP_PACKET_LENGTH) {
    throw new ProtocolError('invalid length of startup packet');
  }
  if (buf.length < length) return undefined;

  const code = buf.readInt32BE(4);
  const raw = Buffer.from(buf.subarray(0, length));

  if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
    if (length !== 8) throw new ProtocolError('invalid length of startup packet');
    return { packet: { kind: code === SSL_REQUEST_CODE ? 'ssl' : 'gssenc' }, length };
  }

  if (code === CANCEL_REQUEST_CODE) {
    if (length < 16 || length > 12 + 256) throw new ProtocolError('invalid length of cancel request packet');
    return {
      packet: { kind: 'cancel', pid: raw.readInt32BE(8), secret: Buffer.from(raw.subarray(12)), raw },
      length,
    };
  }

  const major = code >>> 16;
  if (major !== 3) {
    throw new ProtocolError(
      `unsupported frontend protocol ${major}.${code & 0xffff}: server supports 3.0 to 3.0`,
      '0A000',
    );
  }
  return { packet: { kind: 'startup', protocolVersion: code, params: parseParams(raw), raw }, length };
}

function parseParams(raw: Buffer): Map<string, string> {
  const params = new Map<string, string>();
  let off = 8;
  for (;;) {
    if (off >= raw.length) {
      throw new ProtocolError('invalid startup packet layout: expected terminator as last byte');
    }
    if (raw[off] === 0) {
      // Postgres insists the terminator is the very last byte; trailing junk means a framing bug.
      if (off !== raw.length - 1) {
        throw new ProtocolError('invalid startup packet layout: expected terminator as last byte');
      }
      return params;
    }
    const nameEnd = raw.indexOf(0, off);
    if (nameEnd < 0) throw new ProtocolError('invalid startup packet layout: unterminated parameter name');
    const valueEnd = raw.indexOf(0, nameEnd + 1);
    if (valueEnd < 0) throw new ProtocolError('invalid startup packet layout: unterminated parameter value');
    params.set(decodeUtf8(raw.subarray(off, nameEnd)), decodeUtf8(raw.subarray(nameEnd + 1, valueEnd)));
    off = valueEnd + 1;
  }
}

// ignoreBOM: a leading U+FEFF is part of the value and must survive re-serialization.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Parameters are re-serialized after routing, so a lossy decode would silently change e.g. a
 * Latin-1 user name; refusing is better than authenticating as someone else's bytes.
 */
function decodeUtf8(bytes: Buffer): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ProtocolError('invalid UTF-8 in startup packet parameter', '22021');
  }
}

export type StartupParams = Map<string, string> | Record<string, string>;

/** Builds a StartupMessage; params keep their insertion order (postgres does not care, humans reading dumps do). */
export function serializeStartupMessage(params: StartupParams, protocolVersion = PROTOCOL_3_0): Buffer {
  const entries = params instanceof Map ? [...params] : Object.entries(params);
  const parts: Buffer[] = [];
  for (const [k, v] of entries) {
    // A NUL inside a name or value would silently shift every following parameter.
    if (k.length === 0 || k.includes('\0') || v.includes('\0')) {
      throw new ProtocolError(`invalid startup parameter ${JSON.stringify(k)}`);
    }
    parts.push(Buffer.from(`${k}\0${v}\0`, 'utf8'));
  }
  parts.push(Buffer.from([0]));
  const body = Buffer.concat(parts);
  const out = Buffer.alloc(8 + body.length);
  out.writeInt32BE(out.length, 0);
  out.writeInt32BE(protocolVersion, 4);
  body.copy(out, 8);
  return out;
}

export function serializeSslRequest(): Buffer {
  return int32Packet(SSL_REQUEST_CODE);
}

export function serializeGssEncRequest(): Buffer {
  return int32Packet(GSSENC_REQUEST_CODE);
}

export function serializeCancelRequest(pid: number, secret: number | Buffer): Buffer {
  const secretBuf = typeof secret === 'number' ? int32(secret) : secret;
  const out = Buffer.alloc(12 + secretBuf.length);
  out.writeInt32BE(out.length, 0);
  out.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  out.writeInt32BE(pid, 8);
  secretBuf.copy(out, 12);
  return out;
}

function int32Packet(code: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeInt32BE(8, 0);
  out.writeInt32BE(code, 4);
  return out;
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  // node-postgres hands out secret keys as signed ints; accept unsigned ones too.
  if (n < 0) b.writeInt32BE(n, 0);
  else b.writeUInt32BE(n, 0);
  return b;
}

export interface ErrorResponseInit {
  message: string;
  /** SQLSTATE, five characters. */
  code: string;
  severity?: 'FATAL' | 'ERROR' | 'PANIC';
  detail?: string;
  hint?: string;
}

/** A server ErrorResponse ('E'): each field is a type byte plus a C string, the list ends with a NUL. */
export function buildErrorResponse(e: ErrorResponseInit): Buffer {
  const severity = e.severity ?? 'FATAL';
  const fields: [string, string][] = [
    ['S', severity],
    // 'V' is the never-localized severity (protocol 3.0, PG 9.6+); clients prefer it over 'S'.
    ['V', severity],
    ['C', e.code],
    ['M', e.message],
  ];
  if (e.detail !== undefined) fields.push(['D', e.detail]);
  if (e.hint !== undefined) fields.push(['H', e.hint]);
  const body = Buffer.concat([
    ...fields.map(([t, v]) => Buffer.from(`${t}${v.replaceAll('\0', '')}\0`, 'utf8')),
    Buffer.from([0]),
  ]);
  const out = Buffer.alloc(5 + body.length);
  out.write('E', 0, 'ascii');
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

/** Decodes the fields of an ErrorResponse or NoticeResponse body (the bytes after type and length). */
export function parseErrorFields(body: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  let off = 0;
  while (off < body.length && body[off] !== 0) {
    const end = body.indexOf(0, off + 1);
    if (end < 0) throw new ProtocolError('unterminated error field');
    fields[String.fromCharCode(body[off]!)] = body.toString('utf8', off + 1, end);
    off = end + 1;
  }
  return fields;
}

export interface BackendMessage {
  /** One ASCII character, e.g. 'R', 'K', 'Z', 'E'. */
  type: string;
  /** Payload without the type byte and the length word. */
  body: Buffer;
}

/** Parses a whole BackendKeyData message ('K', length, pid, secret); undefined if it is not one. */
export function parseBackendKeyData(msg: Buffer | BackendMessage): { pid: number; secret: Buffer } | undefined {
  let body: Buffer;
  if (Buffer.isBuffer(msg)) {
    if (msg.length < 5 || msg[0] !== 0x4b /* K */) return undefined;
    const len = msg.readInt32BE(1);
    if (msg.length < 1 + len) return undefined;
    body = msg.subarray(5, 1 + len);
  } else {
    if (msg.type !== 'K') return undefined;
    body = msg.body;
  }
  if (body.length < 8 || body.length > 4 + 256) return undefined;
  return { pid: body.readInt32BE(0), secret: Buffer.from(body.subarray(4)) };
}

/** Map key identifying a running backend by its (pid, secret) pair. */
export function cancelKey(pid: number, secret: Buffer): string {
  return `${pid}:${secret.toString('hex')}`;
}

/**
 * Splits a stream of typed messages (type byte + Int32 length) into whole messages, however the
 * bytes happen to be chunked by TCP/TLS. Used only to observe the server's startup responses, so
 * it refuses absurd lengths rather than buffering them.
 */
export class MessageFramer {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly maxMessageLength = 1 << 20) {}

  push(chunk: Buffer): BackendMessage[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: BackendMessage[] = [];
    let off = 0;
    while (this.pending.length - off >= 5) {
      const len = this.pending.readInt32BE(off + 1);
      if (len < 4 || len > this.maxMessageLength) {
        throw new ProtocolError(`invalid message length ${len}`);
      }
      if (this.pending.length - off < 1 + len) break;
      out.push({
        type: String.fromCharCode(this.pending[off]!),
        body: Buffer.from(this.pending.subarray(off + 5, off + 1 + len)),
      });
      off += 1 + len;
    }
    // Copy the tail so a huge chunk is not retained for the sake of a few leftover bytes.
    this.pending = off === 0 ? this.pending : Buffer.from(this.pending.subarray(off));
    return out;
  }

  get buffered(): number {
    return this.pending.length;
  }
}

export interface RouteInput {
  database?: string;
  options?: string;
  /** TLS server name (SNI) the client asked for, if any. */
  sni?: string | null | false;
  /** Startup `user`; postgres uses it as the database name when none is given. */
  user?: string;
}

export interface Route {
  endpointId: string;
  database?: string;
  /** The client's options with the endpoint token removed; undefined when nothing is left. */
  options?: string;
}

/**
 * Works out which endpoint a client wants. The database name wins because every client passes it
 * through untouched; SNI needs TLS and a host name (not an IP); `options` is the escape hatch for
 * clients that can do neither.
 */
export function routeEndpoint(input: RouteInput): Route | undefined {
  const { endpointId: fromOptions, options } = extractEndpointOption(input.options);

  let endpointId: string | undefined;
  let database = input.database;

  if (database !== undefined) {
    const dot = database.indexOf('.');
    if (dot > 0 && ENDPOINT_ID_RE.test(database.slice(0, dot))) {
      endpointId = database.slice(0, dot);
      database = database.slice(dot + 1);
    }
  }
  if (endpointId === undefined && input.sni) {
    // Host names are case-insensitive; endpoint ids are lower case.
    const label = input.sni.toLowerCase().split('.')[0]!;
    if (ENDPOINT_ID_RE.test(label)) endpointId = label;
  }
  endpointId ??= fromOptions;
  if (endpointId === undefined) return undefined;

  if (database === undefined || database === '') database = input.user;
  return { endpointId, database, options };
}

const ENDPOINT_TOKEN_RE = /^(?:--)?endpoint=(.*)$/;

/**
 * Pulls `endpoint=ep-x` / `--endpoint=ep-x` out of a libpq options string. Every such token is
 * removed, valid or not: postgres would reject it as an unknown command-line argument.
 */
export function extractEndpointOption(options: string | undefined): { endpointId?: string; options?: string } {
  if (options === undefined) return {};
  let endpointId: string | undefined;
  const kept: string[] = [];
  for (const token of splitOptions(options)) {
    const m = ENDPOINT_TOKEN_RE.exec(token);
    if (m) {
      const id = m[1]!;
      if (endpointId === undefined && ENDPOINT_ID_RE.test(id)) endpointId = id;
      continue;
    }
    kept.push(token);
  }
  return { endpointId, options: kept.length ? kept.join(' ') : undefined };
}

/**
 * Splits like postgres' pg_split_opts: whitespace separates, a backslash escapes the next
 * character. Tokens are returned raw (escapes kept) so re-joining them is lossless for postgres.
 */
export function splitOptions(options: string): string[] {
  const tokens: string[] = [];
  let cur = '';
  let inToken = false;
  for (let i = 0; i < options.length; i++) {
    const c = options[i]!;
    if (c === '\\' && i + 1 < options.length) {
      cur += c + options[++i];
      inToken = true;
    } else if (/\s/.test(c)) {
      if (inToken) tokens.push(cur);
      cur = '';
      inToken = false;
    } else {
      cur += c;
      inToken = true;
    }
  }
  if (inToken) tokens.push(cur);
  return tokens;
}
