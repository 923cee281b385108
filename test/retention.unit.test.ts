import { planRetention, RetentionInput } from '../src/domain/retention';

const day = 86_400_000;
const at = (daysAgo: number) => new Date(Date.parse('2026-12-01T00:00:00Z') - daysAgo * day).toISOString();
const base = (id: string, historyId: string, n: number, daysAgo: number) => ({ id, historyId, startLsn: `0/${(n * 16).toString(16)}000000`, endLsn: `0/${(n * 16 + 1).toString(16)}000000`, takenAt: at(daysAgo), timeline: 1 });

describe('retention', () => {
  const input = (o: Partial<RetentionInput> = {}): RetentionInput => ({
    histories: [{ historyId: 'h1', startedAt: at(30), endedAt: null }],
    bases: [base('b1', 'h1', 1, 20), base('b2', 'h1', 2, 10), base('b3', 'h1', 3, 5), base('b4', 'h1', 4, 1)],
    namedBackups: [],
    forkPoints: [],
    windowStart: at(7),
    ...o,
  });

  it('keeps the newest base at or before the window start and every later one; WAL from the oldest kept', () => {
    const p = planRetention(input());
    expect(p.removeBases.map((b) => b.id).sort()).toEqual(['b1']);
    expect(p.pruneWal).toEqual([{ historyId: 'h1', timeline: 1, keepFromLsn: base('b2', 'h1', 2, 10).startLsn }]);
    expect(p.removeHistories).toEqual([]);
  });

  it('keeps what a named backup or a child fork point needs, however old', () => {
    const p = planRetention(input({ namedBackups: [{ historyId: 'h1', lsn: '0/18000000' }] }));
    expect(p.removeBases).toEqual([]);
    expect(p.pruneWal[0].keepFromLsn).toBe(base('b1', 'h1', 1, 20).startLsn);
    const q = planRetention(input({ forkPoints: [{ historyId: 'h1', lsn: '0/18000000' }] }));
    expect(q.removeBases).toEqual([]);
  });

  it('drops an ended history past the window unless something still needs it; never the current one', () => {
    const histories = [
      { historyId: 'h0', startedAt: at(40), endedAt: at(30) },
      { historyId: 'h1', startedAt: at(30), endedAt: null },
    ];
    const bases = [base('a1', 'h0', 1, 35), base('b4', 'h1', 4, 1)];
    expect(planRetention(input({ histories, bases })).removeHistories).toEqual(['h0']);
    expect(planRetention(input({ histories, bases, namedBackups: [{ historyId: 'h0', lsn: '0/20000000' }] })).removeHistories).toEqual([]);
    expect(planRetention(input({ histories, bases: [] })).removeHistories).toEqual(['h0']);
  });
  it('keeps the full base and the incrementals a kept incremental builds on, and WAL only from the oldest base a restore starts at', () => {
    // b1 full (20 days), b2 on b1 (10), b3 on b2 (5), b4 full (1): the window (7 days) starts at b2.
    const bases = [base('b1', 'h1', 1, 20), { ...base('b2', 'h1', 2, 10), parentId: 'b1' }, { ...base('b3', 'h1', 3, 5), parentId: 'b2' }, base('b4', 'h1', 4, 1)];
    const p = planRetention(input({ bases }));
    expect(p.removeBases).toEqual([]);
    expect(p.pruneWal[0].keepFromLsn).toBe(base('b2', 'h1', 2, 10).startLsn);
    // Once a full base is past the window start, the old chain goes whole.
    const later = planRetention(input({ bases, windowStart: at(0.5) }));
    expect(later.removeBases.map((b) => b.id).sort()).toEqual(['b1', 'b2', 'b3']);
    // A named backup that needs b3 keeps b1 and b2 with it.
    const named = planRetention(input({ bases, windowStart: at(0.5), namedBackups: [{ historyId: 'h1', lsn: '0/38000000' }] }));
    expect(named.removeBases).toEqual([]);
    expect(named.pruneWal[0].keepFromLsn).toBe(base('b3', 'h1', 3, 5).startLsn);
  });
});
