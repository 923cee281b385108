/**
 * What a project-scoped key may reach: the routes of its projects, the project list (its
 * projects only), the plans, and its own keys. Any other project is not there to it (404); the
 * organization's own routes (members, invitations, webhooks, audit log, usage) and making
 * projects are refused (403).
 */
const SCOPED_KEY_ROUTES = new Set(['GET /v1/projects', 'GET /v1/plans', 'GET /v1/orgs/api-keys', 'POST /v1/orgs/api-keys', 'DELETE /v1/orgs/api-keys/{key_id}']);

export type ScopeRefusal = { status: 404 } | { status: 403; message: string };

export function projectScopeRefusal(o: { method: string; path: string; projectId?: string; projectIds: readonly string[] }): ScopeRefusal | undefined {
  if (o.path.includes('{project_id}')) return o.projectId !== undefined && o.projectIds.includes(o.projectId) ? undefined : { status: 404 };
  if (SCOPED_KEY_ROUTES.has(`${o.method.toUpperCase()} ${o.path}`)) return undefined;
  return { status: 403, message: `a project-scoped key cannot use ${o.method.toUpperCase()} ${o.path}; use a key of the whole organization` };
}

/** A key made by a scoped key sees at most what its creator sees. */
export function scopeOfNewKey(creator: readonly string[] | undefined, requested: readonly string[] | undefined): { projectIds: string[] | null } | { refused: string[] } {
  if (!creator) return { projectIds: requested ? [...new Set(requested)] : null };
  if (!requested) return { projectIds: [...creator] };
  const outside = requested.filter((p) => !creator.includes(p));
  return outside.length ? { refused: outside } : { projectIds: [...new Set(requested)] };
}
