import { Client } from 'pg';

export interface SeedScript {
  id: string;
  name: string;
  sql: string;
}

export interface SeedResult {
  id: string;
  name: string;
  status: 'succeeded' | 'failed' | 'not_run';
  duration_ms: number;
  error?: string;
}

export class SeedError extends Error {
  constructor(
    readonly seed: SeedScript,
    readonly pgError: string,
    readonly results: SeedResult[],
  ) {
    super(`seed "${seed.name}" failed: ${pgError}`);
  }
}

export interface UserConnection {
  port: number;
  user: string;
  password: string;
  database?: string;
}

/**
 * Runs seeds in order as the user's role over loopback, never as the platform superuser: a seed
 * is user SQL and must not get more power than its author. Each seed is one simple-protocol
 * batch, so a multi-statement seed applies entirely or not at all.
 */
export async function runSeeds(conn: UserConnection, seeds: SeedScript[]): Promise<SeedResult[]> {
  const results: SeedResult[] = seeds.map((s) => ({ id: s.id, name: s.name, status: 'not_run', duration_ms: 0 }));
  if (seeds.length === 0) return results;
  const client = new Client({ host: '127.0.0.1', port: conn.port, user: conn.user, password: conn.password, database: conn.database ?? 'postgres' });
  client.on('error', () => undefined);
  await client.connect();
  try {
    for (const [i, seed] of seeds.entries()) {
      const started = performance.now();
      try {
        await client.query(seed.sql);
        results[i] = { ...results[i], status: 'succeeded', duration_ms: Math.round(performance.now() - started) };
      } catch (err) {
        const pgError = pgErrorText(err);
        results[i] = { ...results[i], status: 'failed', duration_ms: Math.round(performance.now() - started), error: pgError };
        throw new SeedError(seed, pgError, results);
      }
    }
    return results;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function pgErrorText(err: unknown): string {
  const e = err as { message?: string; code?: string; position?: string };
  const where = e.position ? ` (at character ${e.position})` : '';
  return `${e.message ?? String(err)}${e.code ? ` [SQLSTATE ${e.code}]` : ''}${where}`;
}
