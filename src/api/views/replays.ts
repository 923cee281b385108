import { z } from 'zod';
import '../zod';
import type { ReplayQueriesResult } from '../../workflows/replays';

const measured = z.object({
  query: z.string(),
  source_mean_ms: z.number(),
  target_mean_ms: z.number(),
  ratio: z.number().openapi({ description: 'target_mean_ms ÷ source_mean_ms' }),
  status: z.enum(['regression', 'improvement', 'stable']),
  source_buffers: z.number().int().openapi({ description: 'Shared buffers (hit + read) per execution, median of the timed runs' }),
  target_buffers: z.number().int(),
  plan_changed: z.boolean(),
  reason: z.string().openapi({ description: 'Why it got its verdict: the plan change, buffers and times' }),
});
const skipped = z.object({ query: z.string(), status: z.literal('skipped'), reason: z.string() });

export const replayResultSchema = z
  .object({
    queries: z.array(z.union([measured, skipped])),
    summary: z.object({ total: z.number().int(), regressions: z.number().int(), improvements: z.number().int(), stable: z.number().int(), skipped: z.number().int() }),
    operation_id: z.string(),
  })
  .openapi('ReplayResult');

type Body = z.infer<typeof replayResultSchema>;

export function replayView(r: ReplayQueriesResult, operationId: string): Body {
  return {
    queries: r.queries.map((q) =>
      q.status === 'skipped'
        ? { query: q.query, status: 'skipped' as const, reason: q.reason }
        : {
            query: q.query,
            source_mean_ms: q.sourceMeanMs,
            target_mean_ms: q.targetMeanMs,
            ratio: q.ratio,
            status: q.status,
            source_buffers: q.sourceBuffers,
            target_buffers: q.targetBuffers,
            plan_changed: q.planChanged,
            reason: q.reason,
          },
    ),
    summary: r.summary,
    operation_id: operationId,
  };
}
