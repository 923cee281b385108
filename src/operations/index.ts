// The table of operations: route → operation entry → workflow → activities → engine.
export * from './define';
export * from './projects';
export * from './branches';
export * from './endpoints';
export * from './backups';
export * from './replicas';
export * from './imports';
export * from './console';
export * from './replays';
export * from './masking';
