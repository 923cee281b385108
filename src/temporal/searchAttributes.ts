import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** On every workflow, so an operator can filter the Temporal UI by project, branch or operation. */
export const SA_PROJECT = defineSearchAttributeKey('LampionProjectId', SearchAttributeType.KEYWORD);
export const SA_BRANCH = defineSearchAttributeKey('LampionBranchId', SearchAttributeType.KEYWORD);
export const SA_OPERATION = defineSearchAttributeKey('LampionOperation', SearchAttributeType.KEYWORD);
export const SEARCH_ATTRIBUTES = [SA_PROJECT, SA_BRANCH, SA_OPERATION];
