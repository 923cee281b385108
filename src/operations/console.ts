import { manageExtension, readEndpointLog, readEndpointMetrics } from '../workflows/console';
import { defineOperation, workflowIds } from './define';

/** A read of a compute's log on its host: no operations row (see runRead). */
export const endpointLogRead = defineOperation({
  kind: 'endpoint.logs',
  workflow: readEndpointLog,
  workflowId: (i) => workflowIds.endpointLogRead(i.endpointId, i.readId),
  projectId: (i) => i.projectId,
});

/** Installing or removing an extension only a superuser may: one per extension and database at a time. */
export const extensionManage = defineOperation({
  kind: 'extension.manage',
  workflow: manageExtension,
  workflowId: (i) => workflowIds.extension(i.spec.endpointId, i.database, i.name),
  projectId: (i) => i.projectId,
  branchId: (i) => i.branchId,
  detail: (i) => ({ endpoint_id: i.spec.endpointId, database: i.database, extension: i.name, action: i.action }),
});

/** A read of a compute's live metrics on its host: no operations row (see runRead). */
export const endpointMetricsRead = defineOperation({
  kind: 'endpoint.metrics',
  workflow: readEndpointMetrics,
  workflowId: (i) => workflowIds.endpointMetricsRead(i.spec.endpointId, i.readId),
  projectId: (i) => i.projectId,
});
