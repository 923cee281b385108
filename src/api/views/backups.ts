import { z } from 'zod';
import '../zod';
import type { BackupRow } from '../../db/queries/backups';

export const backupSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    branch_id: z.string(),
    kind: z.enum(['named', 'scheduled']),
    lsn: z.string().openapi({ description: 'Restore point: a restore holds every transaction whose commit record starts before it' }),
    created_at: z.string(),
  })
  .openapi('Backup');

export const restoredSchema = z
  .object({
    branch_id: z.string(),
    compute_id: z.string(),
    lsn: z.string(),
    last_commit_at: z.string().nullable().openapi({ description: 'Commit time of the last transaction the restored branch holds' }),
    connection_string: z.string().optional(),
    operation_id: z.string(),
  })
  .openapi('Restored');

export function backupView(b: BackupRow) {
  return {
    id: b.id,
    name: b.name,
    branch_id: b.branch_id,
    kind: b.kind,
    lsn: b.lsn,
    created_at: new Date(b.created_at).toISOString(),
  } satisfies z.infer<typeof backupSchema>;
}
