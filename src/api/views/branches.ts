import { z } from 'zod';
import '../zod';
import type { BranchListRow } from '../../db/queries/branches';
import type { EndpointListRow } from '../../db/queries/endpoints';
import type { BranchResult } from '../../workflows/branches';
import { endpointView, PublicAccess } from './endpoints';

export const branchSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    is_primary: z.boolean(),
    parent_id: z.string().nullable(),
    parent_lsn: z.string().nullable(),
    pg_version: z.number().int(),
    parent_commit_at: z.string().nullable().openapi({ description: 'For a branch made at a past point (parent_lsn / parent_timestamp / a restore): commit time of the last transaction it holds' }),
    status: z.enum(['provisioning', 'ready', 'resetting', 'deleting']),
    protected: z.boolean(),
    ttl_hours: z.number().nullable(),
    expires_at: z.string().nullable(),
    storage_driver: z.string(),
    compute_id: z.string().nullable(),
    anonymization_enabled: z.boolean().openapi({ description: 'Dynamic masking is on (an analyst sees only such branches)' }),
    created_at: z.string(),
  })
  .openapi('Branch');

const seedOutcome = z.object({ id: z.string(), name: z.string(), status: z.string(), duration_ms: z.number(), error: z.string().optional() });

export const branchWithComputeSchema = branchSchema
  .extend({
    pg_port: z.number().nullable(),
    host: z.string(),
    port: z.number(),
    connection_string: z.string().optional(),
    pg_password: z.string().optional(),
    seeds: z.array(seedOutcome),
    operation_id: z.string(),
  })
  .openapi('BranchWithCompute');

export const branchAcceptedSchema = z.object({ operation_id: z.string(), status: z.literal('running'), branch_id: z.string() }).openapi('BranchAccepted');

export function branchView(b: BranchListRow) {
  return {
    id: b.id,
    name: b.name,
    is_primary: b.is_primary,
    parent_id: b.parent_id,
    parent_lsn: b.parent_lsn,
    pg_version: b.pg_version,
    parent_commit_at: b.parent_commit_at ? new Date(b.parent_commit_at).toISOString() : null,
    status: b.status,
    protected: b.protected,
    ttl_hours: b.ttl_hours,
    expires_at: b.expires_at ? new Date(b.expires_at).toISOString() : null,
    storage_driver: b.driver,
    compute_id: b.compute_id ?? null,
    anonymization_enabled: b.anonymization !== null,
    created_at: new Date(b.created_at).toISOString(),
  } satisfies z.infer<typeof branchSchema>;
}

/** Branch, its compute and what the operation did: the answer to create and reset. */
export function branchWithComputeView(b: BranchListRow, ep: EndpointListRow, access: PublicAccess, result: Pick<BranchResult, 'seeds'>, operationId: string) {
  const e = endpointView(ep, access);
  return {
    ...branchView(b),
    pg_port: e.pg_port,
    host: e.host,
    port: e.port,
    ...(e.connection_string ? { connection_string: e.connection_string, pg_password: e.pg_password } : {}),
    seeds: result.seeds,
    operation_id: operationId,
  } satisfies z.infer<typeof branchWithComputeSchema>;
}
