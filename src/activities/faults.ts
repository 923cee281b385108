import { ApplicationFailure } from '@temporalio/common';

type Fn = (...args: any[]) => Promise<unknown>;

/**
 * Makes the named activities fail without retry: tests prove that each saga step is
 * compensated. Empty in production (LAMPION_FAULT_INJECTION unset).
 */
export function withFaults<T extends Record<string, Fn>>(activities: T, faults: readonly string[]): T {
  if (faults.length === 0) return activities;
  const out: Record<string, Fn> = { ...activities };
  for (const name of faults) {
    if (!(name in out)) continue;
    out[name] = async () => {
      throw ApplicationFailure.nonRetryable(`injected fault in activity ${name}`, 'InjectedFault');
    };
  }
  return out as T;
}
