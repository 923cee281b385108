import { defineQuery } from '@temporalio/workflow';

/** Shared by workflows (handler) and the API (caller); defining a query needs no workflow context. */
export const progressQuery = defineQuery<{ step: string; steps: string[] }>('progress');
