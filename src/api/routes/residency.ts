import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import { projectIdParam } from '../params';
import { requireBranch, requireProject } from '../lookup';
import { dataLayers, UNKNOWN_REGION } from '../../domain/residency';

export function registerResidencyRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/residency',
    summary: "Where the project's data lives in this deployment, layer by layer, and whether each is encrypted in transit and at rest: only what the platform does (the region's place is the operator's LAMPION_REGION_CATALOG)",
    tags: ['Residency'],
    action: 'project.read',
    params: projectIdParam,
    responses: {
      200: {
        description: 'Residency report',
        schema: z.object({
          region_id: z.string(),
          region: z.object({ city: z.string().nullable(), country: z.string().nullable(), provider: z.string().nullable(), datacenter: z.string().nullable(), certifications: z.array(z.string()) }),
          region_described: z.boolean().openapi({ description: 'false: the operator has not described this region; nothing is claimed about its place' }),
          data_layers: z.array(z.object({ layer: z.string(), location: z.string(), encrypted_in_transit: z.boolean(), in_transit: z.string(), encrypted_at_rest: z.boolean(), at_rest: z.string() })),
          compliance: z.object({ data_in_country: z.string().nullable(), single_host: z.boolean() }),
        }),
      },
    },
    handler: async (ctx, { params, auth }) => {
      const p = await requireProject(deps, auth, params.project_id);
      const branch = p.branch_id ? await requireBranch(deps, auth, p.id, p.branch_id) : undefined;
      const described = deps.config.regionCatalog[p.region];
      const region = described ?? UNKNOWN_REGION;
      ctx.body = {
        region_id: p.region,
        region,
        region_described: Boolean(described),
        data_layers: dataLayers({
          hostId: deps.config.hostId,
          dataDir: deps.config.dataDir,
          storageDriver: branch?.driver ?? 'unknown',
          proxyRequireTls: deps.config.proxyRequireTls,
          externalCatalog: Boolean(deps.config.databaseUrl),
        }),
        compliance: { data_in_country: region.country, single_host: true },
      };
    },
  });
}
