import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { answerAccepted, runOperation } from '../operationRunner';
import { databaseName, projectIdParam } from '../params';
import { requireEndpoint } from '../lookup';
import { requireRunningCompute } from '../compute';
import { ENDPOINT_ID_RE } from '../../domain/ids';
import { DEFAULT_REPLAY_THRESHOLDS } from '../../domain/replay';
import { replayRun } from '../../operations';
import { replayResultSchema, replayView } from '../views/replays';

const endpointId = z.string().regex(ENDPOINT_ID_RE, 'not an endpoint id');
const d = DEFAULT_REPLAY_THRESHOLDS;

export function registerReplayRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/projects/{project_id}/replay',
    summary:
      "Replay the source's top statements by total time (pg_stat_statements) on the target: warm-up, then alternating timed runs of EXPLAIN (ANALYZE, BUFFERS) in rolled-back transactions; each statement's verdict compares plans and shared buffers as well as times",
    tags: ['Query Replay'],
    action: 'replay.run',
    params: projectIdParam,
    body: z
      .object({
        source_endpoint_id: endpointId,
        target_endpoint_id: endpointId,
        limit: z.number().int().min(1).max(100).default(20),
        database: databaseName,
        repetitions: z.number().int().min(1).max(50).default(5).openapi({ description: 'Timed runs per side, after one warm-up each' }),
        statement_timeout_ms: z.number().int().min(10).max(60_000).default(10_000),
        thresholds: z
          .object({
            time_ratio: z.number().min(1).max(100).default(d.timeRatio),
            min_time_delta_ms: z.number().min(0).max(60_000).default(d.minTimeDeltaMs),
            buffer_ratio: z.number().min(1).max(1000).default(d.bufferRatio),
            min_buffer_delta: z.number().int().min(0).max(1e9).default(d.minBufferDelta),
          })
          .strict()
          .default({ time_ratio: d.timeRatio, min_time_delta_ms: d.minTimeDeltaMs, buffer_ratio: d.bufferRatio, min_buffer_delta: d.minBufferDelta })
          .openapi({ description: 'When a change counts: buffers past buffer_ratio and min_buffer_delta, or every timed run apart with time_ratio and min_time_delta_ms' }),
      })
      .strict(),
    responses: {
      200: { description: 'Per statement: means, ratio, buffers, verdict and its reason; summary counts add up to total', schema: replayResultSchema },
      202: { description: 'Still running; poll the operation', schema: z.object({ operation_id: z.string(), status: z.literal('running') }) },
      404: { description: 'An endpoint is not in this project' },
    },
    handler: async (ctx, { params, body, auth }) => {
      const source = await requireEndpoint(deps, auth, params.project_id, body.source_endpoint_id);
      const target = await requireEndpoint(deps, auth, params.project_id, body.target_endpoint_id);
      if (source.host_id !== target.host_id) throw new ApiError(422, 'validation_failed', 'source and target must be on the same host');
      await requireRunningCompute(deps, auth, source);
      await requireRunningCompute(deps, auth, target);
      const t = body.thresholds;
      const outcome = await runOperation(deps, auth, replayRun, {
        projectId: params.project_id,
        hostId: source.host_id,
        sourceEndpointId: source.id,
        targetEndpointId: target.id,
        database: body.database,
        limit: body.limit,
        repetitions: body.repetitions,
        statementTimeoutMs: body.statement_timeout_ms,
        thresholds: { timeRatio: t.time_ratio, minTimeDeltaMs: t.min_time_delta_ms, bufferRatio: t.buffer_ratio, minBufferDelta: t.min_buffer_delta },
      });
      if (!outcome.done) return answerAccepted(ctx, params.project_id, outcome.operationId, { status: 'running' });
      ctx.body = replayView(outcome.result, outcome.operationId);
    },
  });
}
