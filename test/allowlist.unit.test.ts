import { allowlistPermits, compileAllowlist, MAX_ALLOWLIST_ENTRIES, parseAllowlist } from '../src/domain/allowlist';

function errorsOf(entries: string[]) {
  const r = parseAllowlist(entries);
  if (r.ok) throw new Error(`expected errors, got ${JSON.stringify(r.entries)}`);
  return r.errors;
}

describe('parseAllowlist: accepted entries', () => {
  it('accepts an empty list', () => {
    expect(parseAllowlist([])).toEqual({ ok: true, entries: [] });
  });

  it.each([
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['192.168.1.10', '192.168.1.10'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['255.255.255.255', '255.255.255.255'],
    [' 172.16.0.0/12 ', '172.16.0.0/12'],
    ['10.0.0.0/08', '10.0.0.0/8'],
    ['10.1.2.3/32', '10.1.2.3'],
    ['2001:DB8::/32', '2001:db8::/32'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8::1/128', '2001:db8::1'],
    ['::/0', '::/0'],
    ['::1', '::1'],
    ['FE80:0:0:0:0:0:0:0/10', 'fe80::/10'],
    // RFC 5952: compress the longest zero run, the first one on a tie, never a single zero group.
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    // IPv4-mapped IPv6 entries are stored in their IPv4 form.
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['::FFFF:c000:201', '192.0.2.1'],
    ['::ffff:192.0.2.0/120', '192.0.2.0/24'],
    ['::ffff:0:0/96', '0.0.0.0/0'],
    ['::192.0.2.1', '::c000:201'],
  ])('normalizes %j to %j', (entry, normalized) => {
    expect(parseAllowlist([entry])).toEqual({ ok: true, entries: [normalized] });
  });

  it('keeps order and accepts overlapping but distinct networks', () => {
    expect(parseAllowlist(['10.1.0.0/16', '10.0.0.0/8', '2001:db8::/32', '10.1.2.3'])).toEqual({
      ok: true,
      entries: ['10.1.0.0/16', '10.0.0.0/8', '2001:db8::/32', '10.1.2.3'],
    });
  });

  it('formats IPv6 like the WHATWG URL serializer (RFC 5952) for many shapes', () => {
    let seed = 42;
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let k = 0; k < 500; k++) {
      // Mostly zero groups so that runs of every length and position occur.
      const groups = Array.from({ length: 8 }, () => (rnd(3) === 0 ? rnd(0x10000) : 0));
      if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) continue; // mapped: stored as IPv4
      const expanded = groups.map((g) => g.toString(16).padStart(4, '0')).join(':');
      const expected = new URL(`http://[${expanded}]/`).hostname.slice(1, -1);
      expect(parseAllowlist([expanded])).toEqual({ ok: true, entries: [expected] });
    }
  });

  it(`accepts exactly ${MAX_ALLOWLIST_ENTRIES} entries`, () => {
    const entries = Array.from({ length: MAX_ALLOWLIST_ENTRIES }, (_, i) => `10.0.${i}.0/24`);
    expect(parseAllowlist(entries)).toEqual({ ok: true, entries });
  });
});

describe('parseAllowlist: rejected entries', () => {
  it.each([
    'hello',
    'localhost',
    '10.0.0',
    '10.0.0.256',
    '010.0.0.1',
    '10.0.0.0/8/8',
    '1::2:3:4:5:6:7:8',
    '2001:db8::g',
    '10.0.0.1 10.0.0.2',
    '[2001:db8::1]',
  ])('rejects garbage %j', (entry) => {
    expect(errorsOf([entry])).toEqual([{ index: 0, entry, message: expect.stringMatching(/not an IPv4(\/IPv6 address or CIDR| or IPv6 address)/) }]);
  });

  it.each(['10.0.0.0/', '10.0.0.0/abc', '10.0.0.0/-1', '10.0.0.0/+8', '::/ 64'])('rejects the non-numeric prefix in %j', (entry) => {
    expect(errorsOf([entry])).toEqual([{ index: 0, entry, message: expect.stringMatching(/^prefix length .* is not a number$/) }]);
  });

  it('rejects prefixes out of range', () => {
    expect(errorsOf(['10.0.0.0/33', '2001:db8::/129', '::ffff:10.0.0.0/129', '::/128'])).toEqual([
      { index: 0, entry: '10.0.0.0/33', message: 'prefix length /33 is out of range for IPv4 (0-32)' },
      { index: 1, entry: '2001:db8::/129', message: 'prefix length /129 is out of range for IPv6 (0-128)' },
      { index: 2, entry: '::ffff:10.0.0.0/129', message: 'prefix length /129 is out of range for IPv6 (0-128)' },
    ]);
    expect(parseAllowlist(['10.0.0.0/32', '::/128'])).toEqual({ ok: true, entries: ['10.0.0.0', '::'] });
  });

  it('rejects host bits in a CIDR and names the network that was probably meant', () => {
    expect(errorsOf(['10.0.0.1/8'])).toEqual([
      { index: 0, entry: '10.0.0.1/8', message: 'host bits are set in 10.0.0.1/8: did you mean the network 10.0.0.0/8 (or the single address 10.0.0.1)?' },
    ]);
    expect(errorsOf(['192.168.1.130/25'])[0]!.message).toContain('192.168.1.128/25');
    expect(errorsOf(['2001:db8::1/32'])[0]!.message).toContain('did you mean the network 2001:db8::/32 (or the single address 2001:db8::1)');
    expect(errorsOf(['::ffff:10.0.0.1/104'])[0]!.message).toContain('10.0.0.0/8');
    expect(errorsOf(['1.2.3.4/0'])[0]!.message).toContain('0.0.0.0/0');
    // Below /96 the ffff marker is itself host bits, so a mapped range needs a prefix of 96 or more.
    expect(errorsOf(['::ffff:0:0/95'])[0]!.message).toContain('::fffe:0:0/95');
  });

  it('rejects empty entries', () => {
    expect(errorsOf(['10.0.0.1', '', '  '])).toEqual([
      { index: 1, entry: '', message: 'entry is empty' },
      { index: 2, entry: '  ', message: 'entry is empty' },
    ]);
  });

  it('rejects zone indexes', () => {
    expect(errorsOf(['fe80::1%eth0'])[0]!.message).toMatch(/zone/);
  });

  it('rejects duplicates after normalization, pointing at the first occurrence', () => {
    expect(errorsOf(['10.0.0.0/8', '192.168.0.1', '10.0.0.0/8'])).toEqual([
      { index: 2, entry: '10.0.0.0/8', message: 'duplicate of entry 0 ("10.0.0.0/8"), both mean 10.0.0.0/8' },
    ]);
    expect(errorsOf(['2001:db8::1', '2001:DB8:0:0::0001'])[0]).toMatchObject({ index: 1, message: expect.stringContaining('entry 0') });
    expect(errorsOf(['10.0.0.1', '10.0.0.1/32'])[0]).toMatchObject({ index: 1 });
    expect(errorsOf(['10.0.0.1', '::ffff:10.0.0.1'])[0]).toMatchObject({ index: 1 });
    expect(errorsOf([' 10.0.0.1', '10.0.0.1'])[0]).toMatchObject({ index: 1 });
  });

  it(`rejects more than ${MAX_ALLOWLIST_ENTRIES} entries`, () => {
    const entries = Array.from({ length: MAX_ALLOWLIST_ENTRIES + 5 }, (_, i) => `10.${i}.0.0/16`);
    expect(errorsOf(entries)).toEqual([
      { index: MAX_ALLOWLIST_ENTRIES, entry: `10.${MAX_ALLOWLIST_ENTRIES}.0.0/16`, message: `too many entries: at most ${MAX_ALLOWLIST_ENTRIES} are allowed, got ${MAX_ALLOWLIST_ENTRIES + 5}` },
    ]);
  });

  it('reports every problem, in entry order', () => {
    const entries = Array.from({ length: 101 }, (_, i) => `10.0.${i}.0/24`);
    entries[3] = 'nope';
    entries[100] = '10.0.0.0/24';
    expect(errorsOf(entries).map((e) => [e.index, e.message.split(' ')[0]])).toEqual([
      [3, '"nope"'],
      [100, 'duplicate'],
      [100, 'too'],
    ]);
  });

  it('rejects non-string entries from untyped input', () => {
    expect(errorsOf([42 as unknown as string, null as unknown as string])).toEqual([
      { index: 0, entry: '42', message: 'entry must be a string' },
      { index: 1, entry: 'null', message: 'entry must be a string' },
    ]);
  });
});

describe('allowlistPermits', () => {
  it('allows everyone when the list is empty', () => {
    expect(allowlistPermits([], '203.0.113.9')).toBe(true);
    expect(allowlistPermits([], '2001:db8::1')).toBe(true);
  });

  it('matches IPv4 CIDRs and single addresses, inclusive of the range edges', () => {
    const list = ['10.0.0.0/8', '192.168.1.128/25', '203.0.113.7'];
    for (const ok of ['10.0.0.0', '10.255.255.255', '192.168.1.128', '192.168.1.255', '203.0.113.7']) expect(allowlistPermits(list, ok)).toBe(true);
    for (const no of ['11.0.0.0', '9.255.255.255', '192.168.1.127', '203.0.113.8', '127.0.0.1']) expect(allowlistPermits(list, no)).toBe(false);
  });

  it('matches IPv4-mapped IPv6 clients, as dual-stack sockets report them, against IPv4 entries', () => {
    expect(allowlistPermits(['127.0.0.1'], '::ffff:127.0.0.1')).toBe(true);
    expect(allowlistPermits(['10.0.0.0/8'], '::ffff:10.1.2.3')).toBe(true);
    expect(allowlistPermits(['10.0.0.0/8'], '::ffff:a01:203')).toBe(true);
    expect(allowlistPermits(['10.0.0.0/8'], '::FFFF:10.1.2.3')).toBe(true);
    expect(allowlistPermits(['10.0.0.0/8'], '::ffff:11.1.2.3')).toBe(false);
    expect(allowlistPermits(['0.0.0.0/0'], '::ffff:198.51.100.1')).toBe(true);
  });

  it('matches IPv6 entries against IPv6 clients only', () => {
    const list = ['2001:db8::/32', '::1'];
    expect(allowlistPermits(list, '2001:db8:abcd::5')).toBe(true);
    expect(allowlistPermits(list, '2001:DB8:0:0:0:0:0:1')).toBe(true);
    expect(allowlistPermits(list, '::1')).toBe(true);
    expect(allowlistPermits(list, '2001:db9::1')).toBe(false);
    expect(allowlistPermits(list, '127.0.0.1')).toBe(false);
    expect(allowlistPermits(list, '::ffff:127.0.0.1')).toBe(false);
  });

  it('does not let an all-IPv6 entry admit IPv4 clients, nor the reverse', () => {
    expect(allowlistPermits(['::/0'], '2001:db8::1')).toBe(true);
    expect(allowlistPermits(['::/0'], '198.51.100.1')).toBe(false);
    expect(allowlistPermits(['::/0'], '::ffff:198.51.100.1')).toBe(false);
    expect(allowlistPermits(['0.0.0.0/0'], '198.51.100.1')).toBe(true);
    expect(allowlistPermits(['0.0.0.0/0'], '::1')).toBe(false);
  });

  it('ignores the zone of a link-local client', () => {
    expect(allowlistPermits(['fe80::/10'], 'fe80::1%eth0')).toBe(true);
  });

  it('denies addresses it cannot parse', () => {
    for (const bad of ['', 'garbage', '10.0.0', '[::1]']) expect(allowlistPermits(['0.0.0.0/0', '::/0'], bad)).toBe(false);
  });

  it('fails closed on stored entries that do not parse', () => {
    expect(allowlistPermits(['garbage'], '10.0.0.1')).toBe(false);
    expect(allowlistPermits(['garbage', '10.0.0.0/8'], '10.0.0.1')).toBe(true);
    expect(allowlistPermits(['10.0.0.5/8'], '10.0.0.5')).toBe(false);
  });

  it('works on what parseAllowlist produced and with a compiled list', () => {
    const parsed = parseAllowlist(['::ffff:192.0.2.0/120', '2001:DB8:0::/48']);
    if (!parsed.ok) throw new Error('expected ok');
    const permits = compileAllowlist(parsed.entries);
    expect(permits('192.0.2.77')).toBe(true);
    expect(permits('::ffff:192.0.2.77')).toBe(true);
    expect(permits('2001:db8:0:ffff::1')).toBe(true);
    expect(permits('2001:db8:1::1')).toBe(false);
    expect(permits('192.0.3.1')).toBe(false);
  });
});
