import { z } from 'zod';
import '../zod';
import type { OperationRow } from '../../db';

export const operationSchema = z
  .object({
    id: z.string(),
    project_id: z.string(),
    kind: z.string(),
    status: z.enum(['running', 'succeeded', 'failed']),
    step: z.string().nullable(),
    steps: z.array(z.string()).optional(),
    error: z.unknown(),
    result: z.unknown(),
    /** What the operation is about (an import's branch, compute and redacted source). */
    detail: z.unknown(),
    /** The running activity's last heartbeat (a fork's or an import's bytes), while it runs. */
    progress: z.record(z.string(), z.unknown()).nullable(),
    workflow_id: z.string(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('Operation');

export function operationView(op: OperationRow, progress?: { step: string; steps: string[] }, activity?: { details?: Record<string, unknown> }) {
  return {
    id: op.id,
    project_id: op.project_id,
    kind: op.kind,
    status: op.status,
    step: progress?.step ?? op.step,
    steps: progress?.steps,
    error: op.error ?? null,
    result: op.result ?? null,
    detail: op.detail ?? null,
    progress: activity?.details ?? null,
    workflow_id: op.workflow_id,
    created_at: new Date(op.created_at).toISOString(),
    updated_at: new Date(op.updated_at).toISOString(),
  } satisfies z.infer<typeof operationSchema>;
}
