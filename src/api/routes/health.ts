import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import '../zod';

/** Each probe gets this long; /health answers within it even when a component hangs. */
export const PROBE_TIMEOUT_MS = 1300;

function bounded<T>(probe: () => Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([probe(), timeout]).finally(() => clearTimeout(timer));
}

const component = z.object({ status: z.enum(['ok', 'down', 'external']), detail: z.string().optional() });

export function registerHealthRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/health',
    summary: 'State of each component (no API key needed)',
    tags: ['Health'],
    action: null,
    responses: {
      200: {
        description: 'Every component is up',
        schema: z.object({
          status: z.enum(['ok', 'degraded']),
          components: z.record(z.string(), component),
          postgres: z.object({ versions: z.array(z.number().int()), default: z.number().int() }).openapi({ description: 'Postgres majors a project can choose (pg_version)' }),
        }),
      },
      503: { description: 'A component is down' },
    },
    handler: async (ctx) => {
      const entries = await Promise.all(
        Object.entries(deps.probes).map(async ([name, probe]) => {
          try {
            return [name, await bounded(probe, PROBE_TIMEOUT_MS)] as const;
          } catch (err) {
            return [name, { status: 'down' as const, detail: (err as Error).message }] as const;
          }
        }),
      );
      const components = Object.fromEntries(entries);
      const ok = entries.every(([, c]) => c.status !== 'down');
      ctx.status = ok ? 200 : 503;
      const versions = deps.config.pgInstalls.map((i) => i.major);
      ctx.body = { status: ok ? 'ok' : 'degraded', components, postgres: { versions, default: versions[versions.length - 1] } };
    },
  });
}
