import { createBranch, resetBranch, deleteBranch } from '../workflows/branches';
import { defineOperation, workflowIds } from './define';

export const branchCreate = defineOperation({
  kind: 'branch.create',
  workflow: createBranch,
  workflowId: (i) => workflowIds.branch(i.branchId),
  projectId: (i) => i.projectId,
  branchId: (i) => i.branchId,
});

export const branchReset = defineOperation({
  kind: 'branch.reset',
  workflow: resetBranch,
  workflowId: (i) => workflowIds.branch(i.branchId),
  projectId: (i) => i.projectId,
  branchId: (i) => i.branchId,
});

export const branchDelete = defineOperation({
  kind: 'branch.delete',
  workflow: deleteBranch,
  workflowId: (i) => workflowIds.branch(i.branchId),
  projectId: (i) => i.projectId,
  branchId: (i) => i.branchId,
});

/** The TTL sweep's decision: the same workflow as a delete, its own kind in the operator's list. */
export const branchExpire = defineOperation({ ...branchDelete, kind: 'branch.expire' });
