import {
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  MAX_STARTUP_PACKET_LENGTH,
  MessageFramer,
  PROTOCOL_3_0,
  ProtocolError,
  SSL_REQUEST_CODE,
  buildErrorResponse,
  cancelKey,
  extractEndpointOption,
  parseBackendKeyData,
  parseErrorFields,
  parseStartupPacket,
  routeEndpoint,
  serializeCancelRequest,
  serializeGssEncRequest,
  serializeSslRequest,
  serializeStartupMessage,
  splitOptions,
} from '../src/proxy/protocol';

function packet(code: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(8 + payload.length);
  b.writeInt32BE(b.length, 0);
  b.writeInt32BE(code, 4);
  payload.copy(b, 8);
  return b;
}

function backendMessage(type: string, body: Buffer): Buffer {
  const b = Buffer.alloc(5 + body.length);
  b.write(type, 0, 'ascii');
  b.writeInt32BE(4 + body.length, 1);
  body.copy(b, 5);
  return b;
}

function keyData(pid: number, secret: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeInt32BE(pid, 0);
  body.writeInt32BE(secret, 4);
  return backendMessage('K', body);
}

function expectProtocolError(fn: () => unknown, message: RegExp, sqlstate = '08P01'): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ProtocolError);
  expect((caught as ProtocolError).message).toMatch(message);
  expect((caught as ProtocolError).sqlstate).toBe(sqlstate);
}

describe('parseStartupPacket', () => {
  it('recognises SSLRequest and GSSENCRequest', () => {
    expect(parseStartupPacket(serializeSslRequest())).toEqual({ packet: { kind: 'ssl' }, length: 8 });
    expect(parseStartupPacket(serializeGssEncRequest())).toEqual({ packet: { kind: 'gssenc' }, length: 8 });
    expect(serializeSslRequest()).toEqual(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
    expect(serializeGssEncRequest().readInt32BE(4)).toBe(GSSENC_REQUEST_CODE);
  });

  it('parses a CancelRequest and keeps the raw bytes', () => {
    const raw = serializeCancelRequest(4242, 0x7fff0001);
    const parsed = parseStartupPacket(raw)!;
    expect(parsed.length).toBe(16);
    expect(parsed.packet).toEqual({ kind: 'cancel', pid: 4242, secret: Buffer.from([0x7f, 0xff, 0x00, 0x01]), raw });
  });

  it('accepts negative secrets as node-postgres reports them, and long 3.2-style secrets', () => {
    const neg = parseStartupPacket(serializeCancelRequest(7, -5))!.packet;
    expect(neg.kind === 'cancel' && neg.secret.readInt32BE(0)).toBe(-5);
    const long = Buffer.alloc(32, 0xab);
    const p = parseStartupPacket(serializeCancelRequest(7, long))!;
    expect(p.length).toBe(44);
    expect(p.packet.kind === 'cancel' && p.packet.secret).toEqual(long);
  });

  it('rejects cancel requests with impossible lengths', () => {
    expectProtocolError(() => parseStartupPacket(packet(CANCEL_REQUEST_CODE, Buffer.alloc(4))), /cancel/);
    expectProtocolError(() => parseStartupPacket(packet(CANCEL_REQUEST_CODE, Buffer.alloc(300))), /cancel/);
  });

  it('parses a StartupMessage with its parameters in order', () => {
    const raw = serializeStartupMessage({ user: 'alice', database: 'ep-abc.postgres', application_name: 'psql' });
    const parsed = parseStartupPacket(raw)!;
    expect(parsed.length).toBe(raw.length);
    expect(parsed.packet.kind).toBe('startup');
    if (parsed.packet.kind !== 'startup') return;
    expect(parsed.packet.protocolVersion).toBe(PROTOCOL_3_0);
    expect([...parsed.packet.params]).toEqual([
      ['user', 'alice'],
      ['database', 'ep-abc.postgres'],
      ['application_name', 'psql'],
    ]);
    expect(parsed.packet.raw).toEqual(raw);
  });

  it('round-trips byte for byte, including UTF-8 and empty values', () => {
    const params = new Map([
      ['user', 'jürgen'],
      ['options', ''],
      ['_pq_.something', 'x'],
    ]);
    const raw = serializeStartupMessage(params);
    const p = parseStartupPacket(raw)!.packet;
    expect(p.kind === 'startup' && p.params).toEqual(params);
    expect(serializeStartupMessage(p.kind === 'startup' ? p.params : {})).toEqual(raw);
  });

  it('encodes the exact wire format', () => {
    const raw = serializeStartupMessage({ user: 'u' });
    expect(raw).toEqual(Buffer.from([0, 0, 0, 16, 0, 3, 0, 0, 0x75, 0x73, 0x65, 0x72, 0, 0x75, 0, 0]));
    // An empty parameter list still carries the terminator.
    expect(serializeStartupMessage({})).toEqual(Buffer.from([0, 0, 0, 9, 0, 3, 0, 0, 0]));
  });

  it('keeps a 3.x minor version so the server can negotiate it', () => {
    const raw = serializeStartupMessage({ user: 'u' }, (3 << 16) | 2);
    const p = parseStartupPacket(raw)!.packet;
    expect(p.kind === 'startup' && p.protocolVersion).toBe(196610);
  });

  it('refuses parameters that are not valid UTF-8 rather than re-encoding them lossily', () => {
    const latin1User = Buffer.concat([Buffer.from('user\0j'), Buffer.from([0xfc]), Buffer.from('rgen\0\0')]);
    expectProtocolError(() => parseStartupPacket(packet(PROTOCOL_3_0, latin1User)), /UTF-8/, '22021');
  });

  it('keeps a leading byte-order mark', () => {
    const raw = serializeStartupMessage({ user: '\ufeffodd' });
    const p = parseStartupPacket(raw)!.packet;
    expect(p.kind === 'startup' && p.params.get('user')).toBe('\ufeffodd');
    expect(serializeStartupMessage(p.kind === 'startup' ? p.params : {})).toEqual(raw);
  });

  it('lets the last duplicate parameter win, like postgres', () => {
    const body = Buffer.from('user\0a\0user\0b\0\0');
    const p = parseStartupPacket(packet(PROTOCOL_3_0, body))!.packet;
    expect(p.kind === 'startup' && p.params.get('user')).toBe('b');
  });

  it('rejects other protocol majors', () => {
    expectProtocolError(() => parseStartupPacket(packet(2 << 16, Buffer.from('\0'))), /unsupported frontend protocol 2\.0/, '0A000');
  });

  it('rejects malformed parameter lists', () => {
    expectProtocolError(() => parseStartupPacket(packet(PROTOCOL_3_0)), /terminator/);
    expectProtocolError(() => parseStartupPacket(packet(PROTOCOL_3_0, Buffer.from('user\0alice\0'))), /terminator/);
    expectProtocolError(() => parseStartupPacket(packet(PROTOCOL_3_0, Buffer.from('user\0alice'))), /unterminated/);
    expectProtocolError(() => parseStartupPacket(packet(PROTOCOL_3_0, Buffer.from('user'))), /unterminated/);
    expectProtocolError(() => parseStartupPacket(packet(PROTOCOL_3_0, Buffer.from('user\0a\0\0junk'))), /terminator/);
  });

  it('rejects lengths below 8 and above the limit before the bytes arrive', () => {
    const tiny = Buffer.from([0, 0, 0, 4]);
    expectProtocolError(() => parseStartupPacket(tiny), /invalid length/);
    const huge = Buffer.alloc(4);
    huge.writeInt32BE(MAX_STARTUP_PACKET_LENGTH + 1, 0);
    expectProtocolError(() => parseStartupPacket(huge), /invalid length/);
    const negative = Buffer.from([0xff, 0xff, 0xff, 0xff]);
    expectProtocolError(() => parseStartupPacket(negative), /invalid length/);
    // A TLS ClientHello sent without SSLRequest (direct TLS) looks like an enormous length.
    expectProtocolError(() => parseStartupPacket(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])), /invalid length/);
  });

  it('accepts a packet of exactly the maximum length', () => {
    // 8 header + 'user\0u\0' (7) + 'options\0' (8) + value + NUL + list terminator = 25 + value
    const raw = serializeStartupMessage({ user: 'u', options: 'x'.repeat(MAX_STARTUP_PACKET_LENGTH - 25) });
    expect(raw.length).toBe(MAX_STARTUP_PACKET_LENGTH);
    expect(parseStartupPacket(raw)?.length).toBe(MAX_STARTUP_PACKET_LENGTH);
    const tooBig = serializeStartupMessage({ user: 'u', options: 'x'.repeat(MAX_STARTUP_PACKET_LENGTH - 24) });
    expectProtocolError(() => parseStartupPacket(tooBig), /invalid length/);
  });

  it('rejects SSLRequest with a wrong length', () => {
    expectProtocolError(() => parseStartupPacket(packet(SSL_REQUEST_CODE, Buffer.alloc(4))), /invalid length/);
  });

  it('returns undefined for every proper prefix, then parses the whole packet', () => {
    const raw = serializeStartupMessage({ user: 'alice', database: 'ep-abc.db' });
    for (let i = 0; i < raw.length; i++) expect(parseStartupPacket(raw.subarray(0, i))).toBeUndefined();
    expect(parseStartupPacket(raw)?.length).toBe(raw.length);
  });

  it('reports the consumed length so bytes that follow are left for the caller', () => {
    const follow = Buffer.from('p\0\0\0\x08abcd');
    const both = Buffer.concat([serializeSslRequest(), follow]);
    const parsed = parseStartupPacket(both)!;
    expect(parsed.length).toBe(8);
    expect(both.subarray(parsed.length)).toEqual(follow);
    const gssThenSsl = Buffer.concat([serializeGssEncRequest(), serializeSslRequest()]);
    const first = parseStartupPacket(gssThenSsl)!;
    expect(first.packet.kind).toBe('gssenc');
    expect(parseStartupPacket(gssThenSsl.subarray(first.length))?.packet.kind).toBe('ssl');
  });

  it('does not alias the input buffer', () => {
    const raw = serializeCancelRequest(1, 2);
    const p = parseStartupPacket(raw)!.packet;
    raw.fill(0);
    expect(p.kind === 'cancel' && p.raw.readInt32BE(8)).toBe(1);
  });
});

describe('serializeStartupMessage', () => {
  it('refuses NUL bytes that would shift the following parameters', () => {
    expect(() => serializeStartupMessage({ user: 'a\0b' })).toThrow(ProtocolError);
    expect(() => serializeStartupMessage({ 'us\0er': 'a' })).toThrow(ProtocolError);
    expect(() => serializeStartupMessage({ '': 'a' })).toThrow(ProtocolError);
  });
});

describe('serializeCancelRequest', () => {
  it('matches the wire format', () => {
    expect(serializeCancelRequest(1, 2)).toEqual(
      Buffer.from([0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1, 0, 0, 0, 2]),
    );
    expect(serializeCancelRequest(1, 0xffffffff).readUInt32BE(12)).toBe(0xffffffff);
  });
});

describe('buildErrorResponse', () => {
  it('encodes S, V, C, M fields and terminates the list', () => {
    const msg = buildErrorResponse({ code: '08004', message: 'endpoint "ep-x" not found' });
    expect(msg[0]).toBe('E'.charCodeAt(0));
    expect(msg.readInt32BE(1)).toBe(msg.length - 1);
    expect(msg[msg.length - 1]).toBe(0);
    expect(msg[msg.length - 2]).toBe(0);
    expect(msg.subarray(5).toString()).toBe('SFATAL\0VFATAL\0C08004\0Mendpoint "ep-x" not found\0\0');
  });

  it('carries optional detail and hint, and parses back', () => {
    const msg = buildErrorResponse({ code: '57P03', message: 'nope', severity: 'ERROR', detail: 'd', hint: 'h' });
    expect(parseErrorFields(msg.subarray(5))).toEqual({ S: 'ERROR', V: 'ERROR', C: '57P03', M: 'nope', D: 'd', H: 'h' });
  });

  it('counts bytes, not characters, in the length', () => {
    const msg = buildErrorResponse({ code: 'XX000', message: 'ünïcödé ✓' });
    expect(msg.readInt32BE(1)).toBe(msg.length - 1);
    expect(parseErrorFields(msg.subarray(5)).M).toBe('ünïcödé ✓');
  });

  it('strips NULs from text so the field list cannot be truncated', () => {
    const msg = buildErrorResponse({ code: 'XX000', message: 'a\0b' });
    expect(parseErrorFields(msg.subarray(5)).M).toBe('ab');
  });
});

describe('parseBackendKeyData', () => {
  it('parses a whole K message', () => {
    expect(parseBackendKeyData(keyData(1234, -42))).toEqual({ pid: 1234, secret: Buffer.from([0xff, 0xff, 0xff, 0xd6]) });
  });

  it('accepts a framed message too', () => {
    expect(parseBackendKeyData({ type: 'K', body: keyData(9, 10).subarray(5) })?.pid).toBe(9);
  });

  it('returns undefined for other messages and truncated input', () => {
    expect(parseBackendKeyData(backendMessage('Z', Buffer.from('I')))).toBeUndefined();
    expect(parseBackendKeyData(keyData(1, 2).subarray(0, 10))).toBeUndefined();
    expect(parseBackendKeyData(backendMessage('K', Buffer.alloc(3)))).toBeUndefined();
    expect(parseBackendKeyData({ type: 'R', body: Buffer.alloc(8) })).toBeUndefined();
  });

  it('produces the same cancel key as the matching CancelRequest', () => {
    const k = parseBackendKeyData(keyData(77, -1))!;
    const c = parseStartupPacket(serializeCancelRequest(77, -1))!.packet;
    expect(c.kind === 'cancel' && cancelKey(c.pid, c.secret)).toBe(cancelKey(k.pid, k.secret));
    expect(cancelKey(77, Buffer.from([1, 2, 3, 4]))).toBe('77:01020304');
  });
});

describe('MessageFramer', () => {
  const stream = Buffer.concat([
    backendMessage('R', Buffer.from([0, 0, 0, 0])),
    backendMessage('S', Buffer.from('server_version\x0015.0\0')),
    keyData(100, 200),
    backendMessage('Z', Buffer.from('I')),
  ]);

  it('yields whole messages from one chunk', () => {
    const msgs = new MessageFramer().push(stream);
    expect(msgs.map((m) => m.type)).toEqual(['R', 'S', 'K', 'Z']);
    expect(parseBackendKeyData(msgs[2]!)).toEqual({ pid: 100, secret: Buffer.from([0, 0, 0, 200]) });
  });

  it('yields the same messages when fed one byte at a time', () => {
    const f = new MessageFramer();
    const types: string[] = [];
    for (let i = 0; i < stream.length; i++) {
      for (const m of f.push(stream.subarray(i, i + 1))) types.push(m.type);
    }
    expect(types).toEqual(['R', 'S', 'K', 'Z']);
    expect(f.buffered).toBe(0);
  });

  it('handles every split point, including inside the length word', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const f = new MessageFramer();
      const msgs = [...f.push(stream.subarray(0, cut)), ...f.push(stream.subarray(cut))];
      expect(msgs.map((m) => m.type).join('')).toBe('RSKZ');
    }
  });

  it('keeps a partial tail buffered', () => {
    const f = new MessageFramer();
    expect(f.push(stream.subarray(0, 12))).toHaveLength(1);
    expect(f.buffered).toBe(3);
  });

  it('refuses a nonsense length instead of buffering it', () => {
    expect(() => new MessageFramer().push(Buffer.from([0x4b, 0, 0, 0, 2]))).toThrow(ProtocolError);
    expect(() => new MessageFramer(100).push(Buffer.from([0x44, 0, 0, 1, 0]))).toThrow(ProtocolError);
  });
});

describe('splitOptions / extractEndpointOption', () => {
  it('splits on any whitespace and keeps backslash escapes', () => {
    expect(splitOptions('  -c a=b\t--x=y  ')).toEqual(['-c', 'a=b', '--x=y']);
    expect(splitOptions('-c search_path=a\\ b')).toEqual(['-c', 'search_path=a\\ b']);
    expect(splitOptions('')).toEqual([]);
  });

  it('takes endpoint= and --endpoint= tokens out', () => {
    expect(extractEndpointOption('endpoint=ep-abc')).toEqual({ endpointId: 'ep-abc', options: undefined });
    expect(extractEndpointOption('--endpoint=ep-abc -c work_mem=64MB')).toEqual({
      endpointId: 'ep-abc',
      options: '-c work_mem=64MB',
    });
    expect(extractEndpointOption('-c a=b endpoint=ep-abc --search_path=x')).toEqual({
      endpointId: 'ep-abc',
      options: '-c a=b --search_path=x',
    });
  });

  it('removes invalid endpoint tokens without using them', () => {
    expect(extractEndpointOption('endpoint=EP-BAD -c a=b')).toEqual({ endpointId: undefined, options: '-c a=b' });
  });

  it('uses the first valid endpoint token', () => {
    expect(extractEndpointOption('endpoint=ep-one endpoint=ep-two').endpointId).toBe('ep-one');
  });

  it('leaves unrelated options alone', () => {
    expect(extractEndpointOption('-c endpoint_thing=1')).toEqual({ endpointId: undefined, options: '-c endpoint_thing=1' });
    expect(extractEndpointOption(undefined)).toEqual({});
  });
});

describe('routeEndpoint', () => {
  it('takes the endpoint from the database name', () => {
    expect(routeEndpoint({ database: 'ep-abc.postgres' })).toEqual({ endpointId: 'ep-abc', database: 'postgres' });
  });

  it('splits at the first dot only', () => {
    expect(routeEndpoint({ database: 'ep-abc.my.db' })).toEqual({ endpointId: 'ep-abc', database: 'my.db' });
  });

  it('falls back to the user name when the database part is empty', () => {
    expect(routeEndpoint({ database: 'ep-abc.', user: 'alice' })).toEqual({ endpointId: 'ep-abc', database: 'alice' });
  });

  it('ignores database names that only look similar', () => {
    for (const database of ['ep-a.db', 'EP-abc.db', 'ep-abc', 'xep-abc.db', 'ep-ab_c.db', `ep-${'a'.repeat(62)}.db`, '.ep-abc']) {
      expect(routeEndpoint({ database })).toBeUndefined();
    }
    expect(routeEndpoint({ database: `ep-${'a'.repeat(61)}.db` })?.endpointId).toBe(`ep-${'a'.repeat(61)}`);
  });

  it('takes the endpoint from the first SNI label, keeping the database', () => {
    expect(routeEndpoint({ database: 'app', sni: 'ep-abc.eu.lampion.dev' })).toEqual({ endpointId: 'ep-abc', database: 'app' });
    expect(routeEndpoint({ database: 'app', sni: 'EP-ABC.localhost' })?.endpointId).toBe('ep-abc');
    expect(routeEndpoint({ database: 'app', sni: 'localhost' })).toBeUndefined();
    expect(routeEndpoint({ database: 'app', sni: false })).toBeUndefined();
  });

  it('takes the endpoint from options and strips the token', () => {
    expect(routeEndpoint({ database: 'app', options: 'endpoint=ep-abc' })).toEqual({
      endpointId: 'ep-abc',
      database: 'app',
      options: undefined,
    });
    expect(routeEndpoint({ database: 'app', options: '-c statement_timeout=5s --endpoint=ep-abc' })).toEqual({
      endpointId: 'ep-abc',
      database: 'app',
      options: '-c statement_timeout=5s',
    });
  });

  it('prefers database over SNI over options, and still strips the options token', () => {
    expect(routeEndpoint({ database: 'ep-db.x', sni: 'ep-sni.localhost', options: 'endpoint=ep-opt' })).toEqual({
      endpointId: 'ep-db',
      database: 'x',
      options: undefined,
    });
    expect(routeEndpoint({ database: 'x', sni: 'ep-sni.localhost', options: 'endpoint=ep-opt -c a=b' })).toEqual({
      endpointId: 'ep-sni',
      database: 'x',
      options: '-c a=b',
    });
  });

  it('defaults the database to the user name, as postgres does', () => {
    expect(routeEndpoint({ user: 'bob', options: 'endpoint=ep-abc' })).toEqual({
      endpointId: 'ep-abc',
      database: 'bob',
      options: undefined,
    });
    expect(routeEndpoint({ user: 'bob', sni: 'ep-abc.localhost' })?.database).toBe('bob');
  });

  it('keeps options untouched when they hold no endpoint token', () => {
    expect(routeEndpoint({ database: 'ep-abc.db', options: '-c a=b' })?.options).toBe('-c a=b');
  });

  it('returns undefined when nothing names an endpoint', () => {
    expect(routeEndpoint({})).toBeUndefined();
    expect(routeEndpoint({ database: 'postgres', user: 'u', options: '-c a=b' })).toBeUndefined();
  });
});

describe('constants', () => {
  it('match the protocol', () => {
    expect([SSL_REQUEST_CODE, GSSENC_REQUEST_CODE, CANCEL_REQUEST_CODE, PROTOCOL_3_0]).toEqual([
      80877103, 80877104, 80877102, 196608,
    ]);
  });
});
