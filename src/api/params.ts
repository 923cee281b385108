import { z } from 'zod';
import './zod';
import { ENDPOINT_ID_RE, idPattern } from '../domain/ids';
import { checkIdentifier } from '../domain/pgsql/identifiers';

/** Path parameters shared by every route: one schema per id, so one message per id everywhere. */
export const projectIdParam = z.object({ project_id: z.string().regex(idPattern('project'), 'not a project id') });
export const branchParams = projectIdParam.extend({ branch_id: z.string().regex(idPattern('branch'), 'not a branch id') });
export const endpointParams = projectIdParam.extend({ endpoint_id: z.string().regex(ENDPOINT_ID_RE, 'not an endpoint id') });
/** A read replica is an endpoint of its branch: its id is an endpoint id. */
export const replicaParams = branchParams.extend({ replica_id: z.string().regex(ENDPOINT_ID_RE, 'not a replica id') });
export const seedParams = projectIdParam.extend({ seed_id: z.string().regex(idPattern('seed'), 'not a seed id') });
export const backupParams = projectIdParam.extend({ backup_id: z.string().regex(idPattern('backup'), 'not a backup id') });
export const importParams = branchParams;
export const operationParams = projectIdParam.extend({ operation_id: z.string().regex(idPattern('operation'), 'not an operation id') });

/** A Postgres identifier from a request (database, role, table, …), as stored: checked, never trusted. */
export function identifier(what: string) {
  return z.string().superRefine((s, ctx) => {
    const bad = checkIdentifier(s, what);
    if (bad) ctx.addIssue({ code: 'custom', message: bad });
  });
}

/** The database a request works in: as stored (case-sensitive), default postgres. */
export const databaseName = identifier('database').default('postgres').openapi({ description: 'Database, as stored (case-sensitive); default postgres' });

/** `?database=`: the database a read looks in. */
export const databaseQuery = z.object({ database: databaseName });

/** The organization's own resources (members, invitations, keys, webhooks). */
export const memberParams = z.object({ uid: z.string().regex(idPattern('member'), 'not a user id') });
export const invitationParams = z.object({ inv_id: z.string().regex(idPattern('invitation'), 'not an invitation id') });
export const apiKeyParams = z.object({ key_id: z.string().regex(idPattern('apiKey'), 'not an API key id') });
export const webhookParams = z.object({ id: z.string().regex(idPattern('webhook'), 'not a webhook id') });
