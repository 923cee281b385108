/** Roles in increasing order of power. */
export const ROLES = ['analyst', 'viewer', 'developer', 'admin', 'owner'] as const;
export type Role = (typeof ROLES)[number];

export function roleRank(role: Role): number {
  return ROLES.indexOf(role);
}

export function hasRole(actual: Role, required: Role): boolean {
  return roleRank(actual) >= roleRank(required);
}

/**
 * The one policy table: every action a route can perform, and the least role allowed to do it.
 * Routes name an action; the auth middleware consults this table and nothing else.
 */
export const POLICY = {
  'project.list': 'viewer',
  'project.read': 'viewer',
  /**
   * Listing and getting projects and branches: analysts too, scoped by the routes to what has
   * masking on (an analyst's whole world); every other role sees all.
   */
  'project.browse': 'analyst',
  'branch.browse': 'analyst',
  'project.create': 'developer',
  'project.update': 'developer',
  'project.delete': 'admin',
  'operation.read': 'viewer',
  'branch.read': 'viewer',
  'branch.create': 'developer',
  'branch.update': 'developer',
  'branch.reset': 'developer',
  'branch.delete': 'developer',
  'branch.restore': 'developer',
  /** Runs the branch's DDL on its parent (the parent may be production). */
  'branch.merge': 'developer',
  'replica.read': 'viewer',
  'replica.create': 'developer',
  'replica.delete': 'developer',
  'replica.suspend': 'developer',
  'backup.read': 'viewer',
  'backup.create': 'developer',
  'backup.delete': 'admin',
  'seed.read': 'viewer',
  'seed.write': 'developer',
  'endpoint.read': 'viewer',
  /** Connection secrets (pg_password) are shown to developers and above. */
  'endpoint.secrets': 'developer',
  'endpoint.update': 'developer',
  'endpoint.suspend': 'developer',
  'endpoint.allowlist.write': 'admin',
  /** A dump carries every row of the database, as much as the password does. */
  'endpoint.dump': 'developer',
  /** Anything cloud_admin may do in the database, as the console does it. */
  'sql.execute': 'developer',
  /** The console's objects: reading them is the catalog's read; changing them is DDL. */
  'schema.read': 'viewer',
  'database.write': 'developer',
  'role.write': 'developer',
  'permission.write': 'developer',
  'table.write': 'developer',
  'extension.write': 'developer',
  'metrics.read': 'viewer',
  /** Runs the source's statements (rolled back) on both endpoints. */
  'replay.run': 'developer',
  /** Masking status and rules (the analyst connection string among them). */
  'anonymization.read': 'analyst',
  'anonymization.write': 'developer',
  /** The source's credentials reach the platform: the same role as making a branch. */
  'import.validate': 'developer',
  'import.start': 'developer',
  'import.read': 'viewer',
  'import.cancel': 'developer',
  'health.read': 'viewer',
  /** The organization: who is in it (read), and changing who is (admins; owner rules in domain/members). */
  'member.read': 'viewer',
  'member.update': 'admin',
  'member.delete': 'admin',
  'org.transfer_ownership': 'owner',
  'invitation.read': 'admin',
  'invitation.create': 'admin',
  'invitation.delete': 'admin',
  /** Everyone manages their own keys (no higher than themselves); admins see and revoke all. */
  'api_key.read': 'analyst',
  'api_key.create': 'analyst',
  'api_key.delete': 'analyst',
  'audit.read': 'owner',
  /** A webhook receives every matching event of the organization. */
  'webhook.read': 'admin',
  'webhook.write': 'admin',
} as const satisfies Record<string, Role>;

export type Action = keyof typeof POLICY;

/** The less powerful of two roles: what a key of a member may do. */
export function lowerRole(a: Role, b: Role): Role {
  return roleRank(a) <= roleRank(b) ? a : b;
}

export function isAllowed(role: Role, action: Action): boolean {
  return hasRole(role, POLICY[action]);
}
