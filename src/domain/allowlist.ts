import net from 'node:net';

/**
 * IP allowlists of endpoints. Entries are stored in the normalized form `parseAllowlist` returns:
 * IPv4 dotted quads and RFC 5952 IPv6 text, CIDRs as `network/prefix`, single addresses without a
 * prefix. Normalizing on the way in makes duplicates detectable and stored lists comparable.
 */
export const MAX_ALLOWLIST_ENTRIES = 100;

export type AllowlistEntryError = { index: number; entry: string; message: string };

export type AllowlistParseResult = { ok: true; entries: string[] } | { ok: false; errors: AllowlistEntryError[] };

type Family = 4 | 6;

interface Network {
  family: Family;
  /** Network address; host bits are zero. */
  bytes: number[];
  prefix: number;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

export function parseAllowlist(entries: string[]): AllowlistParseResult {
  const errors: AllowlistEntryError[] = [];
  const normalized: string[] = [];
  const firstIndexOf = new Map<string, number>();

  entries.forEach((raw, index) => {
    const entry = typeof raw === 'string' ? raw : String(raw);
    if (typeof raw !== 'string') {
      errors.push({ index, entry, message: 'entry must be a string' });
      return;
    }
    const parsed = parseEntry(raw);
    if ('error' in parsed) {
      errors.push({ index, entry, message: parsed.error });
      return;
    }
    const text = formatNetwork(parsed.network);
    const first = firstIndexOf.get(text);
    if (first !== undefined) {
      errors.push({ index, entry, message: `duplicate of entry ${first} ("${entries[first]}"), both mean ${text}` });
      return;
    }
    firstIndexOf.set(text, index);
    normalized.push(text);
  });

  if (entries.length > MAX_ALLOWLIST_ENTRIES) {
    errors.push({
      index: MAX_ALLOWLIST_ENTRIES,
      entry: String(entries[MAX_ALLOWLIST_ENTRIES]),
      message: `too many entries: at most ${MAX_ALLOWLIST_ENTRIES} are allowed, got ${entries.length}`,
    });
    errors.sort((a, b) => a.index - b.index);
  }

  return errors.length > 0 ? { ok: false, errors } : { ok: true, entries: normalized };
}

/**
 * Whether a client may connect. An empty list allows everyone; otherwise IPv4 entries match IPv4
 * clients, including IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`, which dual-stack sockets
 * report), and IPv6 entries match only genuine IPv6 clients. Entries that do not parse grant
 * nothing, so a corrupted list fails closed.
 */
export function allowlistPermits(entries: string[], clientAddress: string): boolean {
  return compileAllowlist(entries)(clientAddress);
}

/** The same decision as {@link allowlistPermits}, with the list compiled once for many checks. */
export function compileAllowlist(entries: string[]): (clientAddress: string) => boolean {
  if (entries.length === 0) return () => true;
  // One list per family: a single BlockList would let an IPv6 rule such as ::/0 match IPv4
  // clients, because Node compares IPv4 addresses against IPv6 rules in their mapped form.
  const lists: Record<Family, net.BlockList> = { 4: new net.BlockList(), 6: new net.BlockList() };
  for (const entry of entries) {
    const parsed = typeof entry === 'string' ? parseEntry(entry) : undefined;
    if (!parsed || 'error' in parsed) continue;
    const { family, bytes, prefix } = parsed.network;
    lists[family].addSubnet(formatAddress(family, bytes), prefix, family === 4 ? 'ipv4' : 'ipv6');
  }
  return (clientAddress) => {
    const client = parseClient(clientAddress);
    if (!client) return false;
    return lists[client.family].check(formatAddress(client.family, client.bytes), client.family === 4 ? 'ipv4' : 'ipv6');
  };
}

function parseEntry(raw: string): { network: Network } | { error: string } {
  const text = raw.trim();
  if (text === '') return { error: 'entry is empty' };
  const parts = text.split('/');
  if (parts.length > 2) return { error: 'not an IPv4/IPv6 address or CIDR' };
  const [addressText, prefixText] = parts as [string, string | undefined];
  if (addressText.includes('%')) {
    return { error: 'zone indexes (such as %eth0) are not allowed; give the address without it' };
  }
  let family = toFamily(net.isIP(addressText));
  if (!family) return { error: `"${addressText}" is not an IPv4 or IPv6 address` };
  let bytes = toBytes(addressText, family);
  const bits = BITS[family];
  let prefix = bits;
  if (prefixText !== undefined) {
    if (!/^\d+$/.test(prefixText)) return { error: `prefix length "/${prefixText}" is not a number` };
    prefix = Number(prefixText);
    if (prefix > bits) return { error: `prefix length /${prefix} is out of range for IPv${family} (0-${bits})` };
  }
  // Stored in IPv4 form so that duplicates across both spellings are caught and so that matching
  // only has to reason about IPv4 clients in one way.
  if (family === 6 && isV4Mapped(bytes) && prefix >= 96) {
    family = 4;
    bytes = bytes.slice(12);
    prefix -= 96;
  }
  const network = mask(bytes, prefix);
  if (network.some((b, i) => b !== bytes[i])) {
    const single = formatAddress(family, bytes);
    const meant = `${formatAddress(family, network)}/${prefix}`;
    return { error: `host bits are set in ${text}: did you mean the network ${meant} (or the single address ${single})?` };
  }
  return { network: { family, bytes: network, prefix } };
}

function parseClient(address: string): { family: Family; bytes: number[] } | undefined {
  // Node reports link-local peers with their zone; the zone says which interface, not who.
  const bare = address.trim().replace(/%.*$/, '');
  const family = toFamily(net.isIP(bare));
  if (!family) return undefined;
  const bytes = toBytes(bare, family);
  if (family === 6 && isV4Mapped(bytes)) return { family: 4, bytes: bytes.slice(12) };
  return { family, bytes };
}

function toFamily(n: number): Family | undefined {
  return n === 4 || n === 6 ? n : undefined;
}

function isV4Mapped(bytes: number[]): boolean {
  return bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
}

/** Only called on text net.isIP accepted, so the syntax is already known to be valid. */
function toBytes(address: string, family: Family): number[] {
  if (family === 4) return address.split('.').map(Number);
  let text = address;
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    tail = text.slice(lastColon + 1).split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const hextets = [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
  const bytes = hextets.flatMap((h) => [h >> 8, h & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

function mask(bytes: number[], prefix: number): number[] {
  return bytes.map((b, i) => {
    const keep = Math.min(8, Math.max(0, prefix - i * 8));
    return b & ((0xff << (8 - keep)) & 0xff);
  });
}

function formatNetwork(n: Network): string {
  const address = formatAddress(n.family, n.bytes);
  return n.prefix === BITS[n.family] ? address : `${address}/${n.prefix}`;
}

/** Dotted quad, or RFC 5952: lowercase, no leading zeros, the longest run (2+) of zero groups as ::. */
function formatAddress(family: Family, bytes: number[]): string {
  if (family === 4) return bytes.join('.');
  const hextets: number[] = [];
  for (let i = 0; i < 16; i += 2) hextets.push((bytes[i]! << 8) | bytes[i + 1]!);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (hextets[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && hextets[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (hs: number[]) => hs.map((h) => h.toString(16)).join(':');
  if (bestStart < 0) return hex(hextets);
  return `${hex(hextets.slice(0, bestStart))}::${hex(hextets.slice(bestStart + bestLen))}`;
}
