import { ApplicationFailure } from '@temporalio/common';

type Fn = (...args: any[]) => Promise<unknown>;

/**
 * One entry of LAMPION_FAULT_INJECTION:
 * - `name`: every call of the activity fails, before it does anything;
 * - `name#N`: only its Nth call (counted from the worker's start) fails, so an activity that a
 *   compensation or a retried operation calls again (stopEndpoint, setBranchStatus) still works then;
 * - `name:after`: the activity does its work, then fails (a lost answer): its effects are left
 *   for the saga to undo. Combinable: `name#2:after`.
 */
export interface FaultSpec {
  name: string;
  nth?: number;
  after: boolean;
}

export function parseFault(entry: string): FaultSpec {
  const m = /^([A-Za-z0-9_]+)(?:#(\d+))?(:after)?$/.exec(entry.trim());
  if (!m) throw new Error(`bad fault spec "${entry}": expected name, name#N, name:after or name#N:after`);
  return { name: m[1], ...(m[2] ? { nth: Number(m[2]) } : {}), after: Boolean(m[3]) };
}

/**
 * Makes the named activities fail without retry: tests prove that each saga step is
 * compensated. Empty in production (LAMPION_FAULT_INJECTION unset). The list is read at every
 * call, so a test running the stack in its own process may change it (in place) between
 * operations; an entry's `#N` counts the calls since the entry appeared.
 */
export function withFaults<T extends Record<string, Fn>>(activities: T, faults: readonly string[]): T {
  const parsed = new Map<string, FaultSpec>(faults.map((entry) => [entry, parseFault(entry)]));
  const calls = new Map<string, number>();
  const out: Record<string, Fn> = {};
  for (const [name, real] of Object.entries(activities)) {
    out[name] = async (...args: unknown[]) => {
      if (faults.length === 0) return real(...args);
      for (const entry of calls.keys()) if (!faults.includes(entry)) calls.delete(entry);
      let hit: FaultSpec | undefined;
      for (const entry of faults) {
        if (!parsed.has(entry)) parsed.set(entry, parseFault(entry));
        const spec = parsed.get(entry)!;
        if (spec.name !== name) continue;
        const n = (calls.get(entry) ?? 0) + 1;
        calls.set(entry, n);
        if (spec.nth === undefined || spec.nth === n) hit ??= spec;
      }
      if (!hit) return real(...args);
      if (hit.after) await real(...args);
      throw ApplicationFailure.nonRetryable(`injected fault in activity ${name}`, 'InjectedFault');
    };
  }
  return out as T;
}
