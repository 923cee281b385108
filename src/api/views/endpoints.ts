import { z } from 'zod';
import '../zod';
import type { EndpointListRow } from '../../db/queries/endpoints';
import { USER_ROLE } from '../../domain/roles';
import { proxyConnectionString } from '../../domain/connectionString';

export const endpointSchema = z
  .object({
    id: z.string(),
    project_id: z.string(),
    branch_id: z.string(),
    role: z.enum(['primary', 'replica']).openapi({ description: "primary: the branch's read-write compute; replica: a read-only hot standby of it (see …/branches/{id}/replicas)" }),
    pg_version: z.number().int(),
    status: z.enum(['provisioning', 'running', 'suspended', 'deleting']),
    host: z.string(),
    port: z.number(),
    pg_port: z.number().nullable(),
    user: z.string(),
    connection_string: z.string().optional(),
    pg_password: z.string().optional(),
    auto_suspend_seconds: z.number(),
    compute_cu: z.number(),
    min_cu: z.number().nullable(),
    max_cu: z.number().nullable(),
    limits_enforced: z.boolean(),
    wal_archive: z
      .object({
        archived_count: z.number(),
        last_archived_wal: z.string().nullable(),
        last_archived_at: z.string().nullable(),
        failed_count: z.number(),
        last_failed_wal: z.string().nullable(),
        last_failed_at: z.string().nullable(),
        checked_at: z.string(),
      })
      .nullable()
      .openapi({ description: "pg_stat_archiver of the compute as last read by the backup Schedule; failures mean WAL is kept on the compute until archived" }),
    last_active_at: z.string(),
    created_at: z.string(),
  })
  .openapi('Endpoint');

export const endpointStateSchema = z.object({ id: z.string(), status: z.string(), operation_id: z.string().optional() }).openapi('EndpointState');

/** Where clients connect, and the password when the caller may see it. */
export interface PublicAccess {
  host: string;
  port: number;
  /** Opened only for callers allowed to see connection secrets. */
  password?: string;
}

export function connectionFields(endpointId: string, a: PublicAccess) {
  return a.password
    ? { connection_string: proxyConnectionString({ user: USER_ROLE, password: a.password, host: a.host, port: a.port, endpointId }), pg_password: a.password }
    : {};
}

export function endpointView(ep: EndpointListRow, access: PublicAccess) {
  return {
    id: ep.id,
    project_id: ep.project_id,
    branch_id: ep.branch_id,
    role: ep.role,
    pg_version: ep.pg_version,
    status: ep.status,
    host: access.host,
    port: access.port,
    pg_port: ep.port,
    user: USER_ROLE,
    ...connectionFields(ep.id, access),
    auto_suspend_seconds: ep.auto_suspend_seconds,
    compute_cu: ep.compute_cu,
    min_cu: ep.min_cu,
    max_cu: ep.max_cu,
    limits_enforced: ep.limits_enforced,
    wal_archive: ep.wal_archive ?? null,
    last_active_at: new Date(ep.last_active_at).toISOString(),
    created_at: new Date(ep.created_at).toISOString(),
  } satisfies z.infer<typeof endpointSchema>;
}
