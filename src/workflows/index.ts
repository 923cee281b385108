// Every workflow the workers register. Deterministic code only: no I/O, no Date, no Node built-ins.
export { createProject, deleteProject } from './projects';
export { createBranch, resetBranch, deleteBranch } from './branches';
export { suspendEndpoint, resumeEndpoint, resizeEndpoint } from './endpoints';
export { autoSuspendSweep, expireBranches, autoscaleSweep, backupSweep, metricsSweep } from './schedules';
export { createBackup, takeBaseBackup, restoreBranch, restoreBranchInPlace } from './backups';
export { createReplica, deleteReplica, resumeReplica } from './replicas';
export { importDatabase, validateImportSource } from './imports';
export { readEndpointLog, manageExtension, readEndpointMetrics } from './console';
export { mergeBranch } from './merges';
export { replayQueries } from './replays';
export { setBranchMasking } from './masking';
export { deliverWebhook } from './webhooks';
