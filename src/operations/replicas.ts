import { createReplica, deleteReplica, resumeReplica } from '../workflows/replicas';
import { defineOperation, workflowIds } from './define';
import { endpointResume, endpointSuspend } from './endpoints';

/**
 * A read replica is an endpoint of its branch: create, delete, suspend and resume of one replica
 * share its endpoint state id (one at a time, like suspend and resume of any endpoint), tagged
 * with the replica's branch.
 */
export const replicaCreate = defineOperation({
  kind: 'replica.create',
  workflow: createReplica,
  workflowId: (i) => workflowIds.endpointState(i.replicaId),
  projectId: (i) => i.projectId,
  branchId: (i) => i.branchId,
});

export const replicaDelete = defineOperation({
  kind: 'replica.delete',
  workflow: deleteReplica,
  workflowId: (i) => workflowIds.endpointState(i.replicaId),
  projectId: (i) => i.projectId,
  branchId: (i) => i.branchId,
});

export const replicaResume = defineOperation({
  kind: 'replica.resume',
  workflow: resumeReplica,
  workflowId: (i) => workflowIds.endpointState(i.endpointId),
  projectId: (i) => i.projectId,
  branchId: (i) => i.branchId,
});

/** The endpoint suspend (a clean stop), queueing behind a replica's resume as behind a wake. */
export const replicaSuspend = defineOperation({ ...endpointSuspend, kind: 'replica.suspend', queueBehind: [endpointResume, replicaResume] });
