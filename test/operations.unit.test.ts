import { ActivityFailure, ApplicationFailure, RetryState } from '@temporalio/common';
import * as ops from '../src/operations';
import { FAILURE_TYPES, NON_RETRYABLE_FAILURES, failure, httpStatusOf, rootFailure } from '../src/operations/failures';
import { queuesBehind } from '../src/operations/client';
import { resourceName } from '../src/domain/names';
import { pagination } from '../src/api/pagination';

const defs = Object.values(ops).filter((v): v is ops.OperationDef<any, any> => typeof v === 'object' && v !== null && 'kind' in v && 'workflow' in v);

describe('the operation table', () => {
  it('gives every operation its own kind and a workflow function', () => {
    const kinds = defs.map((d) => d.kind);
    expect(new Set(kinds).size).toBe(kinds.length);
    for (const d of defs) expect(typeof d.workflow).toBe('function');
    expect(ops.workflowType(ops.branchExpire)).toBe('deleteBranch');
  });

  it('puts the operations of one resource on one workflow id, so they never overlap', () => {
    const b = { operationId: 'op-1', projectId: 'prj-1', branchId: 'br-1', endpointId: 'ep-1', hostId: 'h', parentBranchId: 'br-0', name: 'x' };
    expect(new Set([ops.branchCreate, ops.branchReset, ops.branchDelete, ops.branchExpire].map((d) => d.workflowId(b as any)))).toEqual(new Set(['branch/br-1']));
    const e = { projectId: 'prj-1', endpointId: 'ep-1', branchId: 'br-1', hostId: 'h', computeCu: 1, reason: 'api' };
    const endpointDefs = [ops.endpointSuspend, ops.endpointAutoSuspend, ops.endpointResume, ops.endpointRestart, ops.endpointResize, ops.endpointAutoscale];
    expect(new Set(endpointDefs.map((d) => d.workflowId(e as any)))).toEqual(new Set(['endpoint-state/ep-1']));
    expect(ops.projectCreate.workflowId({ projectId: 'prj-1' } as any)).not.toBe(ops.projectDelete.workflowId({ projectId: 'prj-1' } as any));
  });

  it('lets a suspend queue behind a wake, and nothing else', () => {
    expect(queuesBehind(ops.endpointSuspend, 'resumeEndpoint')).toBe(true);
    expect(queuesBehind(ops.endpointSuspend, 'resizeEndpoint')).toBe(false);
    expect(queuesBehind(ops.branchReset, 'createBranch')).toBe(false);
  });
});

describe('failure types', () => {
  it('declares each once with its retry rule and HTTP status', () => {
    expect(NON_RETRYABLE_FAILURES).toEqual(expect.arrayContaining(['NotFound', 'Conflict', 'Invalid', 'SeedFailed', 'InjectedFault']));
    expect(httpStatusOf('SeedFailed')).toBe(422);
    expect(httpStatusOf('Conflict')).toBe(409);
    expect(httpStatusOf('Unexpected')).toBe(500);
    expect(httpStatusOf(undefined)).toBe(500);
    const f = failure('NotFound', 'gone', { id: 'x' });
    expect(f).toMatchObject({ type: 'NotFound', nonRetryable: !FAILURE_TYPES.NotFound.retryable, message: 'gone' });
  });

  it('finds the application failure under the layers Temporal wraps it in', () => {
    const inner = failure('SeedFailed', 'seed "a" failed', { seed_name: 'a' });
    const wrapped = new ActivityFailure('activity failed', 'runSeed', '1', RetryState.NON_RETRYABLE_FAILURE, undefined, inner);
    const outer = new Error('workflow failed', { cause: wrapped });
    expect(rootFailure(outer)).toEqual({ type: 'SeedFailed', message: 'seed "a" failed', details: { seed_name: 'a' } });
    expect(rootFailure(new Error('plain'))).toEqual({ message: 'plain' });
    expect(rootFailure(ApplicationFailure.nonRetryable('x', 'Invalid'))).toMatchObject({ type: 'Invalid' });
  });
});

describe('names and pagination', () => {
  it('refuse control characters and NUL in names', () => {
    const name = resourceName();
    for (const bad of ['a\u0000b', 'tab\there', 'x\u007f', 'c1\u0085', '', ' '.repeat(3), 'x'.repeat(65)]) expect(name.safeParse(bad).success).toBe(false);
    expect(name.parse('  ok name ')).toBe('ok name');
  });

  it('take limit and offset as plain decimals with defaults', () => {
    expect(pagination.parse({})).toEqual({ limit: 50, offset: 0 });
    expect(pagination.parse({ limit: '100', offset: '7' })).toEqual({ limit: 100, offset: 7 });
    for (const q of [{ limit: '0' }, { limit: '0x10' }, { offset: '1e3' }, { offset: '' }, { limit: '101' }, { limit: ' 5' }, { offset: '-1' }]) {
      expect(pagination.safeParse(q).success).toBe(false);
    }
  });
});
