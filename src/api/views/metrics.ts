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

export const liveMetricsSchema = z
  .object({
    endpoint_id: z.string(),
    compute_status: z.string(),
    connections_total: z.number(),
    cache_hit_ratio: z.number().nullable().openapi({ description: '% of block reads served from shared buffers since the statistics began; null when suspended or no reads yet' }),
    storage_logical_mb: z.number().nullable().openapi({ description: "Sum of the databases' sizes" }),
    storage_logical_measured_at: z.string().nullable(),
    storage_data_dir_mb: z.number().nullable().openapi({ description: 'The data dir on disk (snapshot-shared extents counted in full)' }),
    compute_cpu_seconds: z.number().nullable().openapi({ description: "CPU time of the compute's cgroup since it started; null where this host enforces no cgroup limits" }),
    memory_mb: z.number().nullable(),
    limits_enforced: z.boolean(),
  })
  .openapi('LiveMetrics');

export const snapshotSchema = z
  .object({
    snapshot_at: z.string(),
    endpoint_id: z.string(),
    connections_total: z.number().nullable(),
    cache_hit_ratio: z.number().nullable(),
    storage_logical_mb: z.number().nullable(),
    storage_data_dir_mb: z.number().nullable(),
    compute_cpu_seconds: z.number().nullable(),
    memory_mb: z.number().nullable(),
  })
  .openapi('MetricsSnapshot');

export const vacuumSchema = z
  .object({
    table: z.string(),
    schema: z.string(),
    live_tuples: z.number(),
    dead_tuples: z.number(),
    last_vacuum: z.string().nullable(),
    last_autovacuum: z.string().nullable(),
    last_analyze: z.string().nullable(),
    last_autoanalyze: z.string().nullable(),
    vacuum_count: z.number(),
    autovacuum_count: z.number(),
  })
  .openapi('VacuumStats');
