import { defineSearchAttributeKey, SearchAttributeType, TypedSearchAttributes } from '@temporalio/common';

/** On every workflow, so an operator can filter the Temporal UI by project, branch or operation. */
export const SA_PROJECT = defineSearchAttributeKey('LampionProjectId', SearchAttributeType.KEYWORD);
export const SA_BRANCH = defineSearchAttributeKey('LampionBranchId', SearchAttributeType.KEYWORD);
export const SA_OPERATION = defineSearchAttributeKey('LampionOperation', SearchAttributeType.KEYWORD);
export const SEARCH_ATTRIBUTES = [SA_PROJECT, SA_BRANCH, SA_OPERATION];

/**
 * The LampionOperation of the scheduled sweeps themselves. The operators' saved query
 * `LampionOperation != "sweep"` lists every operation (including those a sweep decided, which
 * are tagged with their project and branch) without the sweep runs that found nothing to do.
 */
export const SWEEP_OPERATION = 'sweep';

export function operationSearchAttributes(o: { kind: string; projectId?: string; branchId?: string }) {
  return [
    { key: SA_OPERATION, value: o.kind },
    ...(o.projectId ? [{ key: SA_PROJECT, value: o.projectId }] : []),
    ...(o.branchId ? [{ key: SA_BRANCH, value: o.branchId }] : []),
  ] as const satisfies ConstructorParameters<typeof TypedSearchAttributes>[0];
}
