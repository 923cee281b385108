import type { AuthContext } from './auth';
import type { ApiDeps } from './deps';
import { notFound } from './errors';
import { findProject } from '../db/queries/projects';
import { findBranch } from '../db/queries/branches';
import { findEndpoint } from '../db/queries/endpoints';
import { hasRole, POLICY } from '../domain/rbac';
import { decryptSecret } from '../domain/secrets';
import type { EndpointRow } from '../db';
import type { PublicAccess } from './views/endpoints';

/** The org-scoped lookups every route starts with, answering 404 for what the org cannot see. */
export async function requireProject(deps: ApiDeps, auth: AuthContext, projectId: string) {
  const p = await findProject(deps.db, auth.orgId, projectId);
  if (!p) throw notFound('project', projectId);
  return p;
}

export async function requireBranch(deps: ApiDeps, auth: AuthContext, projectId: string, branchId: string) {
  await requireProject(deps, auth, projectId);
  const b = await findBranch(deps.db, auth.orgId, projectId, branchId);
  if (!b) throw notFound('branch', branchId);
  return b;
}

export async function requireEndpoint(deps: ApiDeps, auth: AuthContext, projectId: string, endpointId: string) {
  await requireProject(deps, auth, projectId);
  const ep = await findEndpoint(deps.db, auth.orgId, projectId, endpointId);
  if (!ep) throw notFound('endpoint', endpointId);
  return ep;
}

/** Where clients connect, with the password only for roles allowed to see connection secrets. */
export function publicAccess(deps: ApiDeps, auth: AuthContext, ep: Pick<EndpointRow, 'pg_password_enc'>): PublicAccess {
  const secrets = hasRole(auth.role, POLICY['endpoint.secrets']);
  return {
    host: deps.config.publicHost,
    port: deps.proxyPort(),
    ...(secrets ? { password: decryptSecret(ep.pg_password_enc, deps.secretKey) } : {}),
  };
}
