import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { quoteIdent, quoteLiteral } from './identifiers';
import type { Statement } from './statement';

/**
 * Roles users manage. Passwords never appear in SQL text (which pg_stat_statements and the
 * server log may keep): the statement carries a SCRAM-SHA-256 verifier computed here, as psql's
 * \password does.
 */

/** Roles the API does not list or touch: Postgres's own (pg_*) and the platform's. */
export function isManagedRole(name: string, reserved: readonly string[]): boolean {
  return !name.startsWith('pg_') && !reserved.includes(name);
}

export function listRolesSql(reserved: readonly string[]): Statement {
  return {
    text: `SELECT rolname AS name, rolsuper AS is_superuser, rolcanlogin AS can_login, rolcreatedb AS can_create_db, rolcreaterole AS can_create_role
           FROM pg_roles WHERE rolname !~ '^pg_' AND NOT (rolname = ANY($1::text[])) ORDER BY rolname`,
    values: [reserved],
  };
}

/** RFC 5802 / RFC 7677: the verifier Postgres stores for a SCRAM-SHA-256 password. */
export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = 4096): string {
  const salted = pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

export function createRoleSql(name: string, o: { canLogin: boolean; password?: string }): Statement {
  const pw = o.password === undefined ? '' : ` PASSWORD ${quoteLiteral(scramVerifier(o.password))}`;
  return { text: `CREATE ROLE ${quoteIdent(name)} WITH ${o.canLogin ? 'LOGIN' : 'NOLOGIN'} NOSUPERUSER NOREPLICATION NOBYPASSRLS${pw}` };
}

/**
 * Makes the user's role a member of a role it created, so that it can hand it objects (ALTER …
 * OWNER TO) and SET ROLE to it, without inheriting its privileges (16 and later can say so).
 */
export function grantRoleToAdminSql(name: string, admin: string, major: number): Statement {
  return { text: `GRANT ${quoteIdent(name)} TO ${quoteIdent(admin)}${major >= 16 ? ' WITH INHERIT FALSE, SET TRUE' : ''}` };
}

export function alterRolePasswordSql(name: string, password: string): Statement {
  return { text: `ALTER ROLE ${quoteIdent(name)} WITH PASSWORD ${quoteLiteral(scramVerifier(password))}` };
}

export function dropRoleSql(name: string): Statement {
  return { text: `DROP ROLE ${quoteIdent(name)}` };
}

export function roleExistsSql(name: string): Statement {
  return { text: 'SELECT rolname AS name, rolcanlogin AS can_login FROM pg_roles WHERE rolname = $1', values: [name] };
}
