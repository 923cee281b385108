import { parameterSources, planChange, readExplain, verdict, DEFAULT_REPLAY_THRESHOLDS } from '../src/domain/replay';
import { statementTrees } from '../src/domain/sql';

const side = (timesMs: number[], buffers: number, nodes: string[]) => ({ timesMs, buffers: timesMs.map(() => buffers), nodes });

describe('verdict', () => {
  it('calls more buffers with a changed plan a regression, and says why', () => {
    const v = verdict(side([0.05, 0.06, 0.05], 12, ['Index Scan using orders_idx on orders']), side([3.1, 3.3, 3.0], 4310, ['Seq Scan on orders']));
    expect(v).toMatchObject({ status: 'regression', planChanged: true, sourceBuffers: 12, targetBuffers: 4310 });
    expect(v.reason).toMatch(/^Seq Scan on orders replaced Index Scan using orders_idx on orders; buffers 12 → 4,310; mean 0\.05 → 3\.13 ms/);
  });

  it('ignores sub-millisecond and overlapping timing noise', () => {
    expect(verdict(side([0.02, 0.03], 3, ['a']), side([0.09, 0.1], 3, ['a'])).status).toBe('stable');
    // Twice as slow on average, but the runs overlap: noise.
    expect(verdict(side([10, 30, 11], 5, ['a']), side([40, 12, 45], 5, ['a'])).status).toBe('stable');
  });

  it('calls slower runs that never overlap a regression even with the same buffers (added work)', () => {
    const v = verdict(side([2, 2.2, 2.1], 10, ['Function Scan']), side([9, 9.5, 9.2], 10, ['Function Scan']));
    expect(v.status).toBe('regression');
    expect(v.reason).toMatch(/every timed run/);
  });

  it('mirrors for improvements, and follows the thresholds given', () => {
    expect(verdict(side([3], 4000, ['Seq Scan on t']), side([0.1], 10, ['Index Scan using i on t'])).status).toBe('improvement');
    const loose = { ...DEFAULT_REPLAY_THRESHOLDS, bufferRatio: 1000 };
    expect(verdict(side([1, 1], 12, ['x']), side([1, 1], 4310, ['x']), loose).status).toBe('stable');
  });
});

describe('planChange and readExplain', () => {
  it('reads the statement’s buffers and plan nodes', () => {
    const json = [{ Plan: { 'Node Type': 'Bitmap Heap Scan', 'Relation Name': 'orders', 'Shared Hit Blocks': 20, 'Shared Read Blocks': 2, Plans: [{ 'Node Type': 'Bitmap Index Scan', 'Index Name': 'orders_idx' }] }, 'Execution Time': 0.4 }];
    expect(readExplain(json)).toEqual({ timeMs: 0.4, buffers: 22, nodes: ['Bitmap Heap Scan on orders', 'Bitmap Index Scan using orders_idx'] });
    expect(planChange(['a'], ['a'])).toBeUndefined();
    expect(planChange(['Bitmap Heap Scan on orders', 'Bitmap Index Scan using orders_idx'], ['Seq Scan on orders'])).toBe('Seq Scan on orders replaced Bitmap Heap Scan on orders, Bitmap Index Scan using orders_idx');
  });
});

describe('parameterSources', () => {
  const sources = async (sql: string) => Object.fromEntries(parameterSources((await statementTrees(sql))[0].node));
  it('finds the column each parameter is compared with or assigned to', async () => {
    expect(await sources('SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.customer_id = $1 AND c.name IN ($2, $3) LIMIT $4 OFFSET $5')).toEqual({
      1: { kind: 'column', column: 'customer_id', tables: [{ name: 'orders' }] },
      2: { kind: 'column', column: 'name', tables: [{ name: 'customers' }] },
      3: { kind: 'column', column: 'name', tables: [{ name: 'customers' }] },
      4: { kind: 'limit' },
      5: { kind: 'offset' },
    });
    expect(await sources('UPDATE public.t SET note = $1 WHERE id = $2')).toEqual({
      1: { kind: 'column', column: 'note', tables: [{ schema: 'public', name: 't' }] },
      2: { kind: 'column', column: 'id', tables: [{ schema: 'public', name: 't' }] },
    });
    expect(await sources('INSERT INTO audit_log (note) VALUES ($1)')).toEqual({ 1: { kind: 'column', column: 'note', tables: [{ name: 'audit_log' }] } });
    expect(await sources('SELECT $1::int + 1')).toEqual({});
  });
});
