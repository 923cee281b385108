import { z } from 'zod';
import type { ApiDeps } from './deps';
import { isLsn, normalizeLsn } from '../domain/lsn';
import { parseTimestampMicros } from '../domain/restoreTarget';

/** An LSN as Postgres prints it ("0/15A2C08"); answered in its canonical spelling. */
export const lsnField = z
  .string()
  .refine(isLsn, { message: 'not an LSN (e.g. 0/15A2C08)' })
  .transform(normalizeLsn);

/** ISO 8601 with an explicit offset: a moment without one is refused, never guessed. */
export const timestampField = z
  .string()
  .max(40)
  .refine((s) => parseTimestampMicros(s) !== undefined, { message: 'not an ISO 8601 timestamp with an offset (e.g. 2026-04-01T10:00:00Z or 2026-04-01T12:00:00+02:00)' });

/** The oldest moment a restore may name: now minus LAMPION_BACKUP_RETENTION_DAYS. */
export function retentionWindowStart(deps: ApiDeps, now = Date.now()): string {
  return new Date(now - deps.config.backups.retentionDays * 86_400_000).toISOString();
}
