import { compareLsn } from './lsn';
import { baseForLsn, BaseRow, HistoryRow } from './restoreTarget';

export interface RetentionInput {
  histories: HistoryRow[];
  bases: (BaseRow & { timeline: number })[];
  /** Named restore points: kept until deleted, with what restoring them needs. */
  namedBackups: { historyId: string; lsn: string }[];
  /** Where child branches forked from this one (their parent_lsn, in the history current then). */
  forkPoints: { historyId: string; lsn: string }[];
  /** Now minus the retention window, ISO. */
  windowStart: string;
}

export interface RetentionPlan {
  removeBases: { id: string; historyId: string }[];
  /** Histories with nothing left to restore: their archive and bases go. Never the current one. */
  removeHistories: string[];
  /** Per kept history: archived WAL before the oldest kept base's start is no longer needed. */
  pruneWal: { historyId: string; timeline: number; keepFromLsn: string }[];
}

const ms = (iso: string) => Date.parse(iso);

/**
 * What retention may drop without losing a restore anyone can still ask for: within the window,
 * every moment stays restorable (the newest base at or before the window's start and all later
 * ones are kept); beyond it, only what a named backup or a child's fork point needs.
 */
export function planRetention(r: RetentionInput): RetentionPlan {
  const plan: RetentionPlan = { removeBases: [], removeHistories: [], pruneWal: [] };
  const windowStart = ms(r.windowStart);
  for (const h of r.histories) {
    const bases = r.bases.filter((b) => b.historyId === h.historyId).sort((a, b) => compareLsn(a.endLsn, b.endLsn));
    const keep = new Set<string>();
    const inWindow = h.endedAt === null || ms(h.endedAt) >= windowStart;
    if (inWindow) {
      const before = bases.filter((b) => ms(b.takenAt) <= windowStart).at(-1);
      if (before) keep.add(before.id);
      for (const b of bases) if (ms(b.takenAt) > windowStart) keep.add(b.id);
    }
    for (const p of [...r.namedBackups, ...r.forkPoints].filter((p) => p.historyId === h.historyId)) {
      const b = baseForLsn(bases, h.historyId, p.lsn);
      if (b) keep.add(b.id);
    }
    // What restores start from; WAL is needed from the oldest of them on.
    const restorable = bases.filter((b) => keep.has(b.id));
    // An incremental base is restorable only with the chain it builds on, however old.
    const byId = new Map(bases.map((b) => [b.id, b]));
    for (const b of restorable) {
      for (let p = b.parentId ? byId.get(b.parentId) : undefined; p && !keep.has(p.id); p = p.parentId ? byId.get(p.parentId) : undefined) keep.add(p.id);
    }
    for (const b of bases) if (!keep.has(b.id)) plan.removeBases.push({ id: b.id, historyId: h.historyId });
    if (!restorable.length) {
      if (h.endedAt !== null) plan.removeHistories.push(h.historyId);
      continue;
    }
    const oldest = restorable.reduce((a, b) => (compareLsn(a.startLsn, b.startLsn) <= 0 ? a : b));
    plan.pruneWal.push({ historyId: h.historyId, timeline: oldest.timeline, keepFromLsn: oldest.startLsn });
  }
  return plan;
}
