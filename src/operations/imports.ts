import { importDatabase, validateImportSource } from '../workflows/imports';
import { defineOperation, workflowIds } from './define';

/**
 * An import makes a branch: it shares the branch's workflow id with create, reset and delete, so
 * nothing else runs on the branch while it loads. Its row says which branch, compute and source
 * (redacted) it is about.
 */
export const importStart = defineOperation({
  kind: 'import.start',
  workflow: importDatabase,
  workflowId: (i) => workflowIds.branch(i.branchId),
  projectId: (i) => i.projectId,
  branchId: (i) => i.branchId,
  detail: (i) => ({ branch_id: i.branchId, branch_name: i.name, compute_id: i.endpointId, source: i.sourceRedacted }),
});

/** A read on the host that will run the import: no operations row (see runRead). */
export const importValidate = defineOperation({
  kind: 'import.validate',
  workflow: validateImportSource,
  workflowId: (i) => workflowIds.importValidate(i.projectId, i.checkId),
  projectId: (i) => i.projectId,
});
