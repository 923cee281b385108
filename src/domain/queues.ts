/** Task queues. Pure so workflow code can import them. */
export const DEFAULT_CONTROL_TASK_QUEUE = 'lampion-control';

/** Engine work runs on the worker of the machine that holds the data. */
export function hostTaskQueue(hostId: string): string {
  return `host-${hostId}`;
}
