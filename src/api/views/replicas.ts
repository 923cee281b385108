import { z } from 'zod';
import '../zod';
import type { EndpointListRow } from '../../db/queries/endpoints';
import type { ReplicationStatus } from '../../engine/replication';
import { USER_ROLE } from '../../domain/roles';
import { connectionFields, PublicAccess } from './endpoints';

export const replicationSchema = z
  .object({
    replay_lsn: z.string().nullable(),
    primary_lsn: z.string().nullable(),
    lag_bytes: z.number().nullable(),
    lag_seconds: z.number().nullable(),
    last_replayed_commit_at: z.string().nullable(),
    note: z.string().nullable(),
    checked_at: z.string(),
  })
  .openapi('ReplicationLag', {
    description:
      "WAL replayed by the replica against the primary's current position (lag_bytes; null while the primary is suspended) and the time since the last replayed commit when behind (lag_seconds; 0 when caught up). Measured at create and resume, and by the backup Schedule for running replicas; checked_at says when.",
  });

export const replicaSchema = z
  .object({
    id: z.string(),
    branch_id: z.string(),
    project_id: z.string(),
    status: z.enum(['provisioning', 'running', 'suspended', 'deleting']),
    read_only: z.literal(true),
    host: z.string(),
    port: z.number(),
    user: z.string(),
    connection_string: z.string().optional(),
    pg_password: z.string().optional(),
    pg_version: z.number().int(),
    compute_cu: z.number(),
    auto_suspend_seconds: z.number(),
    replication: replicationSchema.nullable(),
    created_at: z.string(),
  })
  .openapi('Replica');

export const replicaStateSchema = z
  .object({ id: z.string(), status: z.string(), operation_id: z.string().optional(), replication: replicationSchema.nullable().optional() })
  .openapi('ReplicaState');

export function replicaView(ep: EndpointListRow, access: PublicAccess, fresh?: ReplicationStatus | null) {
  return {
    id: ep.id,
    branch_id: ep.branch_id,
    project_id: ep.project_id,
    status: ep.status,
    read_only: true as const,
    host: access.host,
    port: access.port,
    user: USER_ROLE,
    ...connectionFields(ep.id, access),
    pg_version: ep.pg_version,
    compute_cu: ep.compute_cu,
    auto_suspend_seconds: ep.auto_suspend_seconds,
    replication: fresh !== undefined ? fresh : (ep.replication ?? null),
    created_at: new Date(ep.created_at).toISOString(),
  } satisfies z.infer<typeof replicaSchema>;
}
