import { setBranchMasking } from '../workflows/masking';
import { defineOperation, workflowIds } from './define';

/** Masking of a branch enabled, remade after a rule changed, or disabled: one at a time per branch. */
export const branchMasking = defineOperation({
  kind: 'branch.anonymization',
  workflow: setBranchMasking,
  workflowId: (i) => workflowIds.anonymization(i.branchId),
  projectId: (i) => i.projectId,
  branchId: (i) => i.branchId,
  detail: (i) => ({ action: i.action, database: i.database }),
});
