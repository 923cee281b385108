import { SYSTEM_ROLE, withSystemClient } from './cluster';
import { USER_ROLE } from '../domain/roles';

/**
 * The user's role and the platform defaults of a new cluster. CREATEROLE only when the guard
 * module is loaded: on Postgres 15 a CREATEROLE role could otherwise grant itself
 * pg_execute_server_program and reach the host shell.
 */
export async function bootstrapRoles(socketDir: string, port: number, password: string, createRole: boolean): Promise<void> {
  await withSystemClient(socketDir, port, async (c) => {
    const pw = c.escapeLiteral(password);
    const attrs = `LOGIN CREATEDB ${createRole ? 'CREATEROLE' : 'NOCREATEROLE'} NOSUPERUSER NOREPLICATION NOBYPASSRLS`;
    const existing = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [USER_ROLE]);
    const verb = existing.rowCount ? 'ALTER' : 'CREATE';
    await c.query(`${verb} ROLE ${c.escapeIdentifier(USER_ROLE)} WITH ${attrs} PASSWORD ${pw}`);
    await c.query(`GRANT pg_monitor, pg_signal_backend TO ${c.escapeIdentifier(USER_ROLE)}`);
    await c.query(`ALTER DATABASE postgres OWNER TO ${c.escapeIdentifier(USER_ROLE)}`);
    await c.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    // The console's reset-stats runs as cloud_admin: the reset is superuser-only by default.
    const resets = await c.query<{ f: string }>("SELECT p.oid::regprocedure::text AS f FROM pg_proc p WHERE p.proname = 'pg_stat_statements_reset'");
    for (const r of resets.rows) await c.query(`GRANT EXECUTE ON FUNCTION ${r.f} TO ${c.escapeIdentifier(USER_ROLE)}`);
  });
}

/** Whether user sessions are open on the compute (the platform's own are not counted). */
export async function hasClientSessions(socketDir: string, port: number): Promise<boolean> {
  return withSystemClient(socketDir, port, async (c) => {
    const r = await c.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename IS DISTINCT FROM $1 AND pid <> pg_backend_pid()",
      [SYSTEM_ROLE],
    );
    return r.rows[0].n > 0;
  });
}
