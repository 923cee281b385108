import { z } from 'zod';
import '../zod';
import type { ProjectListRow } from '../../db/queries/projects';

export const projectSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    region: z.string(),
    pg_version: z.number().int(),
    status: z.enum(['provisioning', 'ready', 'deleting', 'failed']),
    endpoint_id: z.string().nullable(),
    branch_id: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('Project');

export const createdProjectSchema = projectSchema
  .extend({
    connection_string: z.string(),
    pg_password: z.string(),
    host: z.string(),
    port: z.number(),
    user: z.string(),
    storage_driver: z.string(),
    user_can_create_roles: z.boolean(),
    operation_id: z.string(),
  })
  .openapi('CreatedProject');

export const projectAcceptedSchema = z.object({ operation_id: z.string(), status: z.literal('running'), project_id: z.string() }).openapi('ProjectAccepted');

export function projectView(p: ProjectListRow) {
  return {
    id: p.id,
    name: p.name,
    region: p.region,
    pg_version: p.pg_version,
    status: p.status,
    endpoint_id: p.endpoint_id ?? null,
    branch_id: p.branch_id ?? null,
    created_at: new Date(p.created_at).toISOString(),
    updated_at: new Date(p.updated_at).toISOString(),
  } satisfies z.infer<typeof projectSchema>;
}
