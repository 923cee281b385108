import { createBackup, restoreBranch, restoreBranchInPlace, takeBaseBackup } from '../workflows/backups';
import { defineOperation, workflowIds } from './define';

/** A named restore point; queues with nothing: it only reads the branch. */
export const backupCreate = defineOperation({
  kind: 'backup.create',
  workflow: createBackup,
  workflowId: (i) => workflowIds.branchBackup(i.branchId),
  projectId: (i) => i.projectId,
  branchId: (i) => i.branchId,
});

/** A base backup, by the backup Schedule. */
export const backupBase = defineOperation({
  kind: 'backup.base',
  workflow: takeBaseBackup,
  workflowId: (i) => workflowIds.branchBackup(i.branchId),
  projectId: (i) => i.projectId,
  branchId: (i) => i.branchId,
});

/** A new branch at a past point of its parent (a backup's LSN, an LSN, a moment). */
export const branchRestore = defineOperation({
  kind: 'branch.restore',
  workflow: restoreBranch,
  workflowId: (i) => workflowIds.branch(i.branchId),
  projectId: (i) => i.projectId,
  branchId: (i) => i.branchId,
});

/** A branch rewound to a point of its own history, keeping its endpoint; shares the branch's id with reset and delete. */
export const branchRestoreInPlace = defineOperation({
  kind: 'branch.restore-in-place',
  workflow: restoreBranchInPlace,
  workflowId: (i) => workflowIds.branch(i.branchId),
  projectId: (i) => i.projectId,
  branchId: (i) => i.branchId,
});
