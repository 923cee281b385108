import { run } from './exec';
import { PgInstall, SYSTEM_ROLE, pgBin, withSystemClient } from './cluster';
import { lsnToBigInt } from '../domain/lsn';

/**
 * Read replicas: a hot standby of a branch's primary compute on the same host. It streams from
 * the primary over the primary's private unix socket and, while the primary is suspended (or
 * streaming is not possible), replays the primary's WAL archive through restore_command. It has
 * no WAL archive and no history of its own: it writes nothing.
 */

function conninfoValue(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** primary_conninfo of a standby of the compute at socketDir/port (pg_hba trusts the platform role for local replication). */
export function standbyConninfo(i: { socketDir: string; port: number; applicationName: string }): string {
  return `host=${conninfoValue(i.socketDir)} port=${i.port} user=${SYSTEM_ROLE} application_name=${conninfoValue(i.applicationName)}`;
}

/** Settings a hot standby must have at least as high as its primary's, as pg_control last recorded them. */
const STANDBY_MINIMUMS: Record<string, string> = {
  max_connections: 'max_connections setting',
  max_worker_processes: 'max_worker_processes setting',
  max_wal_senders: 'max_wal_senders setting',
  max_prepared_transactions: 'max_prepared_xacts setting',
  max_locks_per_transaction: 'max_locks_per_xact setting',
};

/**
 * The primary's values of the settings a hot standby may not go below, from the standby's own
 * pg_control (it holds the primary's last parameter change). A replica smaller than its primary
 * keeps its memory settings but takes these, or Postgres would refuse to start it.
 */
export async function standbyMinimums(pg: PgInstall, dataDir: string): Promise<Record<string, number>> {
  const { stdout } = await run(pgBin(pg, 'pg_controldata'), ['-D', dataDir], { user: pg.user, env: { LC_ALL: 'C', LANG: 'C', LANGUAGE: '' } });
  const out: Record<string, number> = {};
  for (const [guc, label] of Object.entries(STANDBY_MINIMUMS)) {
    const m = new RegExp(`^${label}:\\s*(\\d+)\\s*$`, 'm').exec(stdout);
    if (m) out[guc] = Number(m[1]);
  }
  return out;
}

/** Each GUC the larger of the two (sizing's own or the primary's minimum). */
export function raiseToMinimums(settings: Record<string, string | number>, minimums: Record<string, number>): Record<string, string | number> {
  const out = { ...settings };
  for (const [k, min] of Object.entries(minimums)) {
    const own = typeof out[k] === 'number' ? (out[k] as number) : Number(out[k] ?? 0);
    if (!(own >= min)) out[k] = min;
  }
  return out;
}

/** What a replica's lag was when last measured. Bytes and seconds are null when they cannot be known. */
export interface ReplicationStatus {
  replay_lsn: string | null;
  primary_lsn: string | null;
  lag_bytes: number | null;
  lag_seconds: number | null;
  last_replayed_commit_at: string | null;
  /** Why a lag is null (the primary is suspended, nothing replayed yet). */
  note: string | null;
  checked_at: string;
}

/**
 * How far the standby is behind: replayed WAL against the primary's current WAL position when the
 * primary runs; the time since the last replayed commit when the replica has replayed less than
 * the primary wrote. Nulls say what cannot be known, with a note why.
 */
export async function replicationStatus(replica: { socketDir: string; port: number }, primary?: { socketDir: string; port: number }): Promise<ReplicationStatus> {
  const r = await withSystemClient(replica.socketDir, replica.port, async (c) =>
    (
      await c.query<{ standby: boolean; replay: string | null; at: Date | null }>(
        'SELECT pg_is_in_recovery() AS standby, pg_last_wal_replay_lsn()::text AS replay, pg_last_xact_replay_timestamp() AS at',
      )
    ).rows[0],
  );
  let primaryLsn: string | null = null;
  let note: string | null = null;
  if (!primary) note = 'the primary is suspended: the replica replays its WAL archive';
  else {
    try {
      primaryLsn = await withSystemClient(primary.socketDir, primary.port, async (c) => (await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn);
    } catch (err) {
      note = `the primary could not be read: ${(err as Error).message}`;
    }
  }
  const lagBytes = primaryLsn && r.replay ? Number(lsnToBigInt(primaryLsn) > lsnToBigInt(r.replay) ? lsnToBigInt(primaryLsn) - lsnToBigInt(r.replay) : 0n) : null;
  let lagSeconds: number | null = null;
  if (lagBytes === 0) lagSeconds = 0;
  else if (lagBytes !== null && r.at) lagSeconds = Math.max(0, (Date.now() - new Date(r.at).getTime()) / 1000);
  if (!r.standby) note = 'the compute is not in recovery';
  return {
    replay_lsn: r.replay,
    primary_lsn: primaryLsn,
    lag_bytes: lagBytes,
    lag_seconds: lagSeconds,
    last_replayed_commit_at: r.at ? new Date(r.at).toISOString() : null,
    note: note ?? (lagBytes !== null && lagSeconds === null ? 'no commit replayed yet to time the lag by' : null),
    checked_at: new Date().toISOString(),
  };
}
