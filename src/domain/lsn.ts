/** Postgres log sequence numbers ("16/B374D848"): parsing, ordering, the WAL file that holds one. */
export const LSN_PATTERN = /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/;

export function isLsn(s: string): boolean {
  return LSN_PATTERN.test(s);
}

export function lsnToBigInt(lsn: string): bigint {
  if (!isLsn(lsn)) throw new Error(`not an LSN: ${JSON.stringify(lsn)}`);
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

export function lsnFromBigInt(v: bigint): string {
  return `${(v >> 32n).toString(16).toUpperCase()}/${(v & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** The canonical spelling (upper case, no leading zeros), as Postgres prints it. */
export function normalizeLsn(lsn: string): string {
  return lsnFromBigInt(lsnToBigInt(lsn));
}

export function compareLsn(a: string, b: string): number {
  const x = lsnToBigInt(a);
  const y = lsnToBigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

export const DEFAULT_WAL_SEGMENT_BYTES = 16n * 1024n * 1024n;

/** The WAL segment file name holding `lsn` on `timeline`, as pg_walfile_name() spells it. */
export function walFileName(timeline: number, lsn: string, segmentBytes = DEFAULT_WAL_SEGMENT_BYTES): string {
  const v = lsnToBigInt(lsn);
  const segNo = v / segmentBytes;
  const perXlogId = 0x100000000n / segmentBytes;
  const hex = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(segNo / perXlogId)}${hex(segNo % perXlogId)}`;
}
