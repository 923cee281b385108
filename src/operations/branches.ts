import { createBranch, resetBranch, deleteBranch } from '../workflows/branches';
import { mergeBranch } from '../workflows/merges';
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

/** A branch's schema merged into its parent: one merge into a parent at a time. */
export const branchMerge = defineOperation({
  kind: 'branch.merge',
  workflow: mergeBranch,
  workflowId: (i) => workflowIds.merge(i.parentBranchId),
  projectId: (i) => i.projectId,
  branchId: (i) => i.branchId,
  detail: (i) => ({ parent_branch_id: i.parentBranchId, dry_run: i.dryRun, allow_destructive: i.allowDestructive, database: i.database }),
});
