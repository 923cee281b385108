import { z } from 'zod';
import '../zod';
import type { OperationRow } from '../../db';
import type { SourceInspection } from '../../engine/sourceInspect';
import type { ImportDatabaseResult } from '../../workflows/imports';
import type { LiveActivity } from '../operationRunner';

const sourceErrorSchema = z.object({
  code: z.enum([
    'unreachable',
    'timeout',
    'bad_credentials',
    'access_denied',
    'tls_required',
    'tls_refused',
    'tls_verify_failed',
    'tls_failed',
    'database_not_found',
    'connection_failed',
    'unsupported_major',
    'missing_extension',
    'extension_needs_superuser',
  ]),
  message: z.string(),
});

export const importValidationSchema = z
  .object({
    ok: z.boolean(),
    errors: z.array(sourceErrorSchema),
    source: z
      .object({
        pg_version: z.string(),
        size_mb: z.number(),
        tables: z.number().int(),
        /** Whether the host reached the source over TLS. */
        tls: z.boolean(),
        extensions: z.array(
          z.object({
            name: z.string(),
            version: z.string(),
            available_on_target: z.boolean(),
            target_version: z.string().nullable(),
            requires_superuser: z.boolean(),
          }),
        ),
      })
      .nullable(),
  })
  .openapi('ImportValidation');

export function importValidationView(r: SourceInspection) {
  return {
    ok: r.ok,
    errors: r.errors,
    source: r.source && {
      pg_version: r.source.pgVersion,
      size_mb: Math.round(r.source.sizeBytes / (1024 * 1024)),
      tables: r.source.tables,
      tls: r.source.tls,
      extensions: r.source.extensions.map((x) => ({
        name: x.name,
        version: x.version,
        available_on_target: x.availableOnTarget,
        target_version: x.targetVersion,
        requires_superuser: x.requiresSuperuser,
      })),
    },
  } satisfies z.infer<typeof importValidationSchema>;
}

export const importAcceptedSchema = z
  .object({ branch_id: z.string(), branch_name: z.string(), compute_id: z.string(), status: z.literal('importing'), operation_id: z.string() })
  .openapi('ImportAccepted');

export const importStatusSchema = z
  .object({
    branch_id: z.string(),
    branch_name: z.string(),
    compute_id: z.string(),
    /** postgresql://user@host:port/db: never the password. */
    source: z.string(),
    status: z.enum(['importing', 'ready', 'failed', 'cancelled']),
    step: z.string().nullable(),
    steps: z.array(z.string()).optional(),
    /** While it loads: what went through pg_dump | psql so far (bytes) and the object being loaded. */
    progress: z.object({ bytes: z.number(), objects: z.number(), current_object: z.string().nullable() }).nullable(),
    result: z.object({ bytes: z.number(), objects: z.number(), tls: z.boolean() }).nullable(),
    error: z.unknown(),
    operation_id: z.string(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('Import');

interface ImportDetail {
  branch_id: string;
  branch_name: string;
  compute_id: string;
  source: string;
}

export function importStatusView(op: OperationRow, live: { step?: { step: string; steps: string[] }; activity?: LiveActivity }) {
  const detail = (op.detail ?? {}) as Partial<ImportDetail>;
  const error = op.error as { type?: string } | null;
  const status = op.status === 'running' ? 'importing' : op.status === 'succeeded' ? 'ready' : error?.type === 'Cancelled' ? 'cancelled' : 'failed';
  const hb = live.activity?.activity === 'loadSourceDump' ? live.activity.details : undefined;
  const result = op.result as ImportDatabaseResult | null;
  return {
    branch_id: detail.branch_id ?? op.workflow_id.replace(/^branch\//, ''),
    branch_name: detail.branch_name ?? '',
    compute_id: detail.compute_id ?? '',
    source: detail.source ?? '',
    status,
    step: live.step?.step ?? op.step,
    ...(live.step ? { steps: live.step.steps } : {}),
    progress:
      op.status === 'running'
        ? {
            bytes: Number(hb?.bytesDone ?? 0),
            objects: Number(hb?.objectsDone ?? 0),
            current_object: typeof hb?.currentObject === 'string' ? hb.currentObject : null,
          }
        : null,
    result: result ? { bytes: result.bytes, objects: result.objects, tls: result.tls } : null,
    error: op.error ?? null,
    operation_id: op.id,
    created_at: new Date(op.created_at).toISOString(),
    updated_at: new Date(op.updated_at).toISOString(),
  } satisfies z.infer<typeof importStatusSchema>;
}
