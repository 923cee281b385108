import { createProject, deleteProject } from '../workflows/projects';
import { defineOperation, workflowIds } from './define';

export const projectCreate = defineOperation({
  kind: 'project.create',
  workflow: createProject,
  workflowId: (i) => workflowIds.projectCreate(i.projectId),
  projectId: (i) => i.projectId,
  branchId: (i) => i.branchId,
});

export const projectDelete = defineOperation({
  kind: 'project.delete',
  workflow: deleteProject,
  workflowId: (i) => workflowIds.projectDelete(i.projectId),
  projectId: (i) => i.projectId,
});
