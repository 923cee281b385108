import { decideOperation, NO_RUN_GRACE_MS, RunningOperation } from '../src/workers/operationReconciler';

describe('operation reconciler: which running operations are closed', () => {
  const created = new Date('2026-01-01T12:00:00Z');
  const later = (ms: number) => new Date(created.getTime() + ms);
  const op = (runId: string | null): RunningOperation => ({ id: 'op-1', workflowId: 'branch/br-1', runId, createdAt: created });
  const run = (status: string, startedMs = 50, runId = 'run-1') => ({ found: true as const, status, runId, startTime: later(startedMs) });

  test('a row whose run is still running is kept', () => {
    expect(decideOperation(op('run-1'), run('RUNNING'), later(3600_000))).toEqual({ action: 'keep' });
  });

  test('a row whose run ended without recording its outcome is closed: failed, or succeeded if it completed', () => {
    for (const status of ['FAILED', 'TERMINATED', 'TIMED_OUT', 'CANCELLED']) {
      const d = decideOperation(op('run-1'), run(status), later(1000));
      expect(d).toMatchObject({ action: 'close', status: 'failed' });
      expect(d.action === 'close' && d.message).toContain(status.toLowerCase());
    }
    expect(decideOperation(op('run-1'), run('COMPLETED'), later(1000))).toMatchObject({ action: 'close', status: 'succeeded' });
  });

  test('a row whose run Temporal no longer knows is closed as failed', () => {
    expect(decideOperation(op('run-1'), { found: false }, later(1000))).toMatchObject({ action: 'close', status: 'failed' });
  });

  test('a row without a run id is left alone during the grace (the API is starting its workflow)', () => {
    expect(decideOperation(op(null), { found: false }, later(NO_RUN_GRACE_MS - 1))).toEqual({ action: 'keep' });
  });

  test('a row without a run id whose workflow never started is closed as failed after the grace', () => {
    const d = decideOperation(op(null), { found: false }, later(NO_RUN_GRACE_MS + 1));
    expect(d).toMatchObject({ action: 'close', status: 'failed' });
    expect(d.action === 'close' && d.message).toMatch(/never started/);
  });

  test('a row without a run id is kept while a run started after it is running (its first step records the run id)', () => {
    expect(decideOperation(op(null), run('RUNNING', 500), later(60_000))).toEqual({ action: 'keep' });
  });

  test("a running execution started before the row is another operation's: the row is closed", () => {
    expect(decideOperation(op(null), run('RUNNING', -60_000), later(60_000))).toMatchObject({ action: 'close', status: 'failed' });
  });

  test('a row without a run id whose workflow id only has closed runs is closed (none of them recorded it)', () => {
    expect(decideOperation(op(null), run('COMPLETED', 500), later(60_000))).toMatchObject({ action: 'close', status: 'failed' });
  });
});
