import { z } from 'zod';
import '../zod';

export const computeEventSchema = z
  .object({
    timestamp: z.string(),
    endpoint_id: z.string(),
    event: z.enum(['start', 'suspend', 'resume', 'resize', 'stop', 'restart']),
    duration_s: z.number().nullable(),
    detail: z.unknown(),
  })
  .openapi('ComputeEvent');

export function computeEventView(r: { at: Date | string; endpoint_id: string; event: string; duration_s: number | null; detail: unknown }) {
  return {
    timestamp: new Date(r.at).toISOString(),
    endpoint_id: r.endpoint_id,
    event: r.event as z.infer<typeof computeEventSchema>['event'],
    duration_s: r.duration_s,
    detail: r.detail ?? null,
  } satisfies z.infer<typeof computeEventSchema>;
}
