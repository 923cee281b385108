import { replayQueries } from '../workflows/replays';
import { defineOperation, workflowIds } from './define';

/** Top statements of one endpoint replayed on another of the same project; reads only. */
export const replayRun = defineOperation({
  kind: 'project.replay',
  workflow: replayQueries,
  workflowId: (i) => workflowIds.replay(i.targetEndpointId, i.operationId),
  projectId: (i) => i.projectId,
  detail: (i) => ({ source_endpoint_id: i.sourceEndpointId, target_endpoint_id: i.targetEndpointId, limit: i.limit, database: i.database }),
});
