import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute } from '../../route';
import type { ApiDeps } from '../../deps';
import { endpointParams } from '../../params';
import { requireEndpoint } from '../../lookup';
import { runRead } from '../../operationRunner';
import { endpointLogRead } from '../../../operations';
import { newId } from '../../../domain/ids';

export const MAX_LOG_LINES = 5000;

export function registerLogRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/endpoints/{endpoint_id}/logs',
    summary: "The last lines of the compute's own Postgres log (one file per endpoint), read on its host; also while it is suspended",
    tags: ['Logs'],
    action: 'endpoint.read',
    params: endpointParams,
    query: z.object({ lines: z.coerce.number().int().min(1).max(MAX_LOG_LINES).default(200) }),
    responses: { 200: { description: 'Oldest first', schema: z.object({ lines: z.array(z.string()), count: z.number() }) } },
    handler: async (ctx, { params, query, auth }) => {
      const ep = await requireEndpoint(deps, auth, params.project_id, params.endpoint_id);
      const lines = await runRead(deps, endpointLogRead, { projectId: ep.project_id, hostId: ep.host_id, endpointId: ep.id, lines: query.lines, readId: newId('operation') });
      ctx.body = { lines, count: lines.length };
    },
  });
}
