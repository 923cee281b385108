import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import { answerPage, pagination, answerSlice, seriesPagination } from '../pagination';
import { databaseName, projectIdParam } from '../params';
import { requireEndpoint, requireProject } from '../lookup';
import type { AuthContext } from '../auth';
import { notFound } from '../errors';
import { runRead } from '../operationRunner';
import { consoleOptions, queryRows, withSession } from '../executor';
import { endpointMetricsRead } from '../../operations';
import { computeDataId } from '../../domain/computeData';
import { ENDPOINT_ID_RE, newId } from '../../domain/ids';
import { vacuumStatsSql } from '../../domain/pgsql/introspection';
import { lastSnapshot, metricsHistory } from '../../db/queries/metrics';
import { computeEventSchema, computeEventView, liveMetricsSchema, snapshotSchema, vacuumSchema } from '../views/metrics';
import { countComputeEvents, listComputeEvents } from '../../db/queries/computeEvents';

const mb = (bytes: number | string | null | undefined) => (bytes === null || bytes === undefined ? null : Math.round((Number(bytes) / 1048576) * 100) / 100);

/** The endpoint a project-level metric is about: the one named, else the primary branch's. */
async function metricsEndpoint(deps: ApiDeps, auth: AuthContext, projectId: string, endpointId?: string) {
  const id = endpointId ?? (await requireProject(deps, auth, projectId)).endpoint_id;
  if (!id) throw notFound('endpoint of the primary branch');
  return requireEndpoint(deps, auth, projectId, id);
}

const endpointQuery = z.object({ endpoint_id: z.string().regex(ENDPOINT_ID_RE, 'not an endpoint id').optional() });

export function registerMetricsRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/metrics',
    summary:
      "Live numbers of the primary's compute (or ?endpoint_id=), measured on its host: sessions, cache hit ratio, databases' size, data dir on disk, its cgroup's CPU seconds and memory. " +
      'A suspended compute is not woken: it says so, and storage is still reported (the data dir; the logical size from the last snapshot)',
    tags: ['Metrics'],
    action: 'metrics.read',
    params: projectIdParam,
    query: endpointQuery,
    responses: { 200: { description: 'Live metrics', schema: liveMetricsSchema } },
    handler: async (ctx, { params, query, auth }) => {
      const ep = await metricsEndpoint(deps, auth, params.project_id, query.endpoint_id);
      const m = await runRead(deps, endpointMetricsRead, {
        projectId: ep.project_id,
        hostId: ep.host_id,
        spec: { endpointId: ep.id, branchId: computeDataId(ep), port: ep.port ?? 0, projectId: ep.project_id },
        readId: newId('operation'),
      });
      const last = m.running ? undefined : await lastSnapshot(deps.db, ep.id);
      ctx.body = {
        endpoint_id: ep.id,
        compute_status: m.running ? 'running' : ep.status,
        connections_total: m.connections ?? 0,
        cache_hit_ratio: m.cacheHitRatio,
        storage_logical_mb: m.running ? mb(m.logicalBytes) : mb(last?.storage_logical_bytes),
        storage_logical_measured_at: m.running ? new Date().toISOString() : (last?.snapshot_at.toISOString() ?? null),
        storage_data_dir_mb: mb(m.dataDirBytes),
        compute_cpu_seconds: m.cpuSeconds === null ? null : Math.round(m.cpuSeconds * 100) / 100,
        memory_mb: mb(m.memoryBytes),
        limits_enforced: ep.limits_enforced,
      };
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/metrics/history',
    summary: 'Snapshots taken by the metrics Schedule (every LAMPION_METRICS_SWEEP_SECONDS, 30 s) of every running compute of the project, newest first, kept 24 h',
    tags: ['Metrics'],
    action: 'metrics.read',
    params: projectIdParam,
    query: z.object({ hours: z.coerce.number().min(0.01).max(24).default(1), endpoint_id: endpointQuery.shape.endpoint_id }).extend(seriesPagination.shape),
    responses: { 200: { description: 'Snapshots', schema: z.array(snapshotSchema) } },
    handler: async (ctx, { params, query, auth }) => {
      await requireProject(deps, auth, params.project_id);
      const rows = await metricsHistory(deps.db, params.project_id, query.hours, query.endpoint_id);
      answerSlice(ctx, query, rows.map((r) => ({
        snapshot_at: r.snapshot_at.toISOString(),
        endpoint_id: r.endpoint_id,
        connections_total: r.connections_total,
        cache_hit_ratio: r.cache_hit_ratio,
        storage_logical_mb: mb(r.storage_logical_bytes),
        storage_data_dir_mb: mb(r.data_dir_bytes),
        compute_cpu_seconds: r.cpu_seconds,
        memory_mb: mb(r.memory_bytes),
      })));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/metrics/vacuum',
    summary: 'Vacuum and autovacuum statistics per table (pg_stat_user_tables) of one database of the primary (or ?endpoint_id=); wakes a suspended compute',
    tags: ['Metrics'],
    action: 'metrics.read',
    params: projectIdParam,
    query: endpointQuery.extend({ database: databaseName }).extend(pagination.shape),
    responses: { 200: { description: 'Tables', schema: z.array(vacuumSchema) } },
    handler: async (ctx, { params, query, auth }) => {
      const ep = await metricsEndpoint(deps, auth, params.project_id, query.endpoint_id);
      const rows = await withSession(deps, auth, ep, consoleOptions(deps, query.database), (s) => queryRows<Record<string, any>>(s, vacuumStatsSql()));
      answerSlice(ctx, query, rows.map((r) => ({
        table: r.table,
        schema: r.schema,
        live_tuples: Number(r.live_tuples),
        dead_tuples: Number(r.dead_tuples),
        last_vacuum: r.last_vacuum,
        last_autovacuum: r.last_autovacuum,
        last_analyze: r.last_analyze,
        last_autoanalyze: r.last_autoanalyze,
        vacuum_count: Number(r.vacuum_count),
        autovacuum_count: Number(r.autovacuum_count),
      })));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/metrics/compute-history',
    summary: 'Compute history: starts, suspends (with running time), resumes, resizes and crash restarts, newest first',
    tags: ['Metrics'],
    action: 'metrics.read',
    params: projectIdParam,
    query: pagination,
    responses: { 200: { description: 'Events', schema: z.array(computeEventSchema) } },
    handler: async (ctx, { params, query, auth }) => {
      await requireProject(deps, auth, params.project_id);
      const rows = await listComputeEvents(deps.db, params.project_id, query);
      answerPage(ctx, await countComputeEvents(deps.db, params.project_id), rows.map(computeEventView));
    },
  });
}
