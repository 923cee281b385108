import { suspendEndpoint, resumeEndpoint, resizeEndpoint } from '../workflows/endpoints';
import { defineOperation, workflowIds } from './define';

export const endpointResume = defineOperation({
  kind: 'endpoint.resume',
  workflow: resumeEndpoint,
  workflowId: (i) => workflowIds.endpointState(i.endpointId),
  projectId: (i) => i.projectId,
  branchId: (i) => i.branchId,
});

export const endpointSuspend = defineOperation({
  kind: 'endpoint.suspend',
  workflow: suspendEndpoint,
  workflowId: (i) => workflowIds.endpointState(i.endpointId),
  projectId: (i) => i.projectId,
  branchId: (i) => i.branchId,
  queueBehind: [endpointResume],
});

/** The auto-suspend sweep's decision, tagged as such so an operator tells it from a user's. */
export const endpointAutoSuspend = defineOperation({ ...endpointSuspend, kind: 'endpoint.auto-suspend' });

export const endpointResize = defineOperation({
  kind: 'endpoint.resize',
  workflow: resizeEndpoint,
  workflowId: (i) => workflowIds.endpointState(i.endpointId),
  projectId: (i) => i.projectId,
  branchId: (i) => i.branchId,
});

export const endpointAutoscale = defineOperation({ ...endpointResize, kind: 'endpoint.autoscale' });

/** A compute found dead by its host's supervisor (or by the proxy) and started again with crash recovery. */
export const endpointRestart = defineOperation({ ...endpointResume, kind: 'endpoint.restart' });
