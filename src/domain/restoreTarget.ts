import { compareLsn } from './lsn';

/**
 * Choosing what a restore replays: which history of the source branch, which base of it, and
 * the exact LSN. The boundary is exclusive: a restore to LSN X holds every transaction whose
 * commit record starts before X and none whose commit record starts at or after it. A timestamp
 * T holds every transaction committed at or before T (its target is the LSN of the first commit
 * after T).
 */
export interface HistoryRow {
  historyId: string;
  startedAt: string;
  endedAt: string | null;
}

export interface BaseRow {
  id: string;
  historyId: string;
  startLsn: string;
  endLsn: string;
  takenAt: string;
  /** An incremental base: the base it holds the changes since, needed to restore it. */
  parentId?: string | null;
}

export interface CommitRow {
  lsn: string;
  atMicros: bigint;
  at: string;
}

export type RestoreTarget = { kind: 'lsn'; lsn: string; historyId?: string } | { kind: 'time'; atMicros: bigint; at: string };

/** ISO 8601 with an explicit offset (Z or ±hh:mm), to the microsecond; undefined when it is not one. */
export function parseTimestampMicros(s: string): bigint | undefined {
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?(Z|[+-]\d\d:\d\d)$/.exec(s);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}T${m[2]}${m[4]}`);
  if (Number.isNaN(ms)) return undefined;
  return BigInt(ms) * 1000n + BigInt((m[3] ?? '').padEnd(6, '0'));
}

const micros = (iso: string) => BigInt(Date.parse(iso)) * 1000n;

/** The history that was current at that moment. */
export function historyAt(histories: HistoryRow[], atMicros: bigint): HistoryRow | undefined {
  return histories
    .filter((h) => micros(h.startedAt) <= atMicros && (h.endedAt === null || atMicros < micros(h.endedAt)))
    .sort((a, b) => (micros(a.startedAt) < micros(b.startedAt) ? 1 : -1))[0];
}

/** The newest base of the history from which replay can reach `lsn` (consistent at or before it). */
export function baseForLsn(bases: BaseRow[], historyId: string, lsn: string): BaseRow | undefined {
  return bases
    .filter((b) => b.historyId === historyId && compareLsn(b.endLsn, lsn) <= 0)
    .sort((a, b) => compareLsn(b.endLsn, a.endLsn))[0];
}

/** The newest base taken at or before the moment: all it holds was committed by then. */
export function baseForTime(bases: BaseRow[], historyId: string, atMicros: bigint): BaseRow | undefined {
  return bases
    .filter((b) => b.historyId === historyId && micros(b.takenAt) <= atMicros)
    .sort((a, b) => compareLsn(b.endLsn, a.endLsn))[0];
}

/**
 * The LSN a moment resolves to: the first commit after it, or the history's end when nothing was
 * committed after it. Never before the base's end: replay cannot stop inside the base.
 */
export function lsnForTime(commits: CommitRow[], atMicros: bigint, base: BaseRow, historyEndLsn: string): string {
  const next = commits.find((c) => c.atMicros > atMicros && compareLsn(c.lsn, base.endLsn) >= 0);
  return next?.lsn ?? historyEndLsn;
}

/** The last transaction a restore to `lsn` holds, when the scanned WAL shows one. */
export function lastCommitBefore(commits: CommitRow[], lsn: string): CommitRow | undefined {
  return commits.filter((c) => compareLsn(c.lsn, lsn) < 0).at(-1);
}
