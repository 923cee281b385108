import { Pool } from 'pg';
import { SYSTEM_ROLE, USER_ROLE } from '../domain/roles';

/** A database of a compute on this host, reached over its private socket as the platform's role. */
export interface DiffDatabase {
  socketDir: string;
  port: number;
  database: string;
}

/** One statement of a schema diff, with what the diff engine itself says of it. */
export interface DiffStatement {
  sql: string;
  /** The engine marks it as losing data (drops of data-bearing objects, narrowing casts). */
  dataLoss: boolean;
  /** The engine marks it as possibly rewriting a table. */
  rewriteRisk: boolean;
}

// @supabase/pg-delta is an ES module: loaded on first use (Node ≥ 20.19 requires it from
// CommonJS too), and only by the processes that merge.
type PgDelta = typeof import('@supabase/pg-delta');
let loaded: Promise<PgDelta> | undefined;
const load = () => (loaded ??= import('@supabase/pg-delta'));

const pool = (d: DiffDatabase) => {
  const p = new Pool({ host: d.socketDir, port: d.port, user: SYSTEM_ROLE, database: d.database, max: 2, application_name: 'lampion-merge' });
  p.on('error', () => undefined);
  return p;
};

/**
 * The DDL that turns `from`'s schema into `to`'s, in order, without trailing semicolons:
 * @supabase/pg-delta's plan (schemas, tables, columns, constraints, indexes, sequences, views,
 * functions, triggers, enums, extensions, policies, comments, privileges) scoped to the database
 * — no role DDL, and no ownership for objects owned by the user role, as every branch's are.
 */
export async function schemaDiff(from: DiffDatabase, to: DiffDatabase): Promise<DiffStatement[]> {
  const { extract, plan } = await load();
  const [a, b] = [pool(from), pool(to)];
  try {
    const [sa, sb] = await Promise.all([extract(a), extract(b)]);
    // Roles live in the cluster, outside the database's scope: the engine must be told they exist.
    const roles = new Set<string>();
    for (const p of [a, b]) for (const r of (await p.query<{ rolname: string }>('SELECT rolname FROM pg_roles')).rows) roles.add(r.rolname);
    const p = plan(sa.factBase, sb.factBase, { scope: 'database', defaultOwner: USER_ROLE, assumedRoles: [...roles] });
    return p.actions
      .map((x) => ({ sql: x.sql.trim().replace(/;\s*$/, ''), dataLoss: x.dataLoss === 'destructive', rewriteRisk: x.rewriteRisk }))
      .filter((x) => x.sql !== '');
  } finally {
    await Promise.all([a.end().catch(() => undefined), b.end().catch(() => undefined)]);
  }
}
