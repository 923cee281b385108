import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { sql } from 'kysely';
import { z } from 'zod';
import { defineRoute } from '../route';
import type { ApiDeps } from '../deps';
import { ApiError, notFound } from '../errors';
import { projectIdParam, seedParams } from '../params';
import { requireProject } from '../lookup';
import { nonEmptyPatch, answerSlice, pagination } from '../pagination';
import { seedSchema, seedView as view } from '../views/seeds';
import { findSeed, listSeeds } from '../../db/queries/seeds';
import { newId } from '../../domain/ids';
import { resourceName } from '../../domain/names';
import { validateSql } from '../../domain/sql';

export const MAX_SEEDS_PER_PROJECT = 10;

const seedName = resourceName();
const seedSql = z
  .string()
  .max(1_000_000, 'must be at most 1 MB')
  .refine((t) => !t.includes('\u0000'), { message: 'must not contain NUL bytes' });

/** SQL is parsed when saved, so a typo fails here, not on the next branch. */
async function assertParses(text: string): Promise<void> {
  const v = await validateSql(text);
  if (!v.ok) {
    throw new ApiError(422, 'invalid_sql', `body.sql: ${v.message} (line ${v.line}, column ${v.column})`, {
      fields: [{ field: 'body.sql', message: v.message, position: v.position, line: v.line, column: v.column }],
    });
  }
}

export function registerSeedRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  const list = (projectId: string) => listSeeds(deps.db, projectId);
  const find = async (projectId: string, seedId: string) => {
    const s = await findSeed(deps.db, projectId, seedId);
    if (!s) throw notFound('seed', seedId);
    return s;
  };

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/seeds',
    summary: 'List seed scripts in the order they run',
    tags: ['Seeds'],
    action: 'seed.read',
    params: projectIdParam,
    query: pagination,
    responses: { 200: { description: 'Seeds', schema: z.array(seedSchema) } },
    handler: async (ctx, { params, auth, query }) => {
      await requireProject(deps, auth, params.project_id);
      answerSlice(ctx, query, (await list(params.project_id)).map(view));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/projects/{project_id}/seeds',
    summary: `Add a seed script (at most ${MAX_SEEDS_PER_PROJECT} per project); it runs last on every new or reset branch`,
    tags: ['Seeds'],
    action: 'seed.write',
    params: projectIdParam,
    body: z.object({ name: seedName, sql: seedSql, enabled: z.boolean().default(true) }).strict(),
    responses: { 201: { description: 'Created', schema: seedSchema }, 409: { description: 'Limit reached' } },
    handler: async (ctx, { params, body, auth }) => {
      await requireProject(deps, auth, params.project_id);
      await assertParses(body.sql);
      const id = newId('seed');
      await deps.db.transaction().execute(async (tx) => {
        // Serializes concurrent adds on one project so the limit and positions hold.
        await tx.selectFrom('projects').select('id').where('id', '=', params.project_id).forUpdate().execute();
        const n = await tx.selectFrom('seeds').select(sql<number>`count(*)::int`.as('n')).where('project_id', '=', params.project_id).executeTakeFirstOrThrow();
        if (n.n >= MAX_SEEDS_PER_PROJECT) {
          throw new ApiError(409, 'limit_reached', `a project has at most ${MAX_SEEDS_PER_PROJECT} seeds; delete one first`);
        }
        await tx
          .insertInto('seeds')
          .values({ id, project_id: params.project_id, name: body.name, sql: body.sql, enabled: body.enabled, position: n.n + 1 })
          .execute();
      });
      ctx.status = 201;
      ctx.body = view(await find(params.project_id, id));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'patch',
    path: '/v1/projects/{project_id}/seeds/{seed_id}',
    summary: 'Update a seed (name, sql, enabled)',
    tags: ['Seeds'],
    action: 'seed.write',
    params: seedParams,
    body: nonEmptyPatch(z.object({ name: seedName.optional(), sql: seedSql.optional(), enabled: z.boolean().optional() })),
    responses: { 200: { description: 'The seed', schema: seedSchema } },
    handler: async (ctx, { params, body, auth }) => {
      await requireProject(deps, auth, params.project_id);
      await find(params.project_id, params.seed_id);
      if (body.sql !== undefined) await assertParses(body.sql);
      await deps.db
        .updateTable('seeds')
        .set({ ...body, updated_at: sql`now()` })
        .where('id', '=', params.seed_id)
        .where('project_id', '=', params.project_id)
        .execute();
      ctx.body = view(await find(params.project_id, params.seed_id));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'delete',
    path: '/v1/projects/{project_id}/seeds/{seed_id}',
    summary: 'Delete a seed; the ones after it move up',
    tags: ['Seeds'],
    action: 'seed.write',
    params: seedParams,
    responses: { 204: { description: 'Deleted' } },
    handler: async (ctx, { params, auth }) => {
      await requireProject(deps, auth, params.project_id);
      const s = await find(params.project_id, params.seed_id);
      await deps.db.transaction().execute(async (tx) => {
        await tx.deleteFrom('seeds').where('id', '=', s.id).execute();
        await tx
          .updateTable('seeds')
          .set({ position: sql`position - 1` })
          .where('project_id', '=', params.project_id)
          .where('position', '>', s.position)
          .execute();
      });
      ctx.status = 204;
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/projects/{project_id}/seeds/reorder',
    summary: "Reorder seeds; `order` must name exactly the project's seeds",
    tags: ['Seeds'],
    action: 'seed.write',
    params: projectIdParam,
    body: z.object({ order: z.array(z.string()).max(MAX_SEEDS_PER_PROJECT * 2) }).strict(),
    responses: { 200: { description: 'New positions', schema: z.array(z.object({ id: z.string(), position: z.number() })) } },
    handler: async (ctx, { params, body, auth }) => {
      await requireProject(deps, auth, params.project_id);
      const current = new Set((await list(params.project_id)).map((s) => s.id));
      const given = new Set(body.order);
      const missing = [...current].filter((id) => !given.has(id));
      const unknown = body.order.filter((id) => !current.has(id));
      const duplicated = body.order.filter((id, i) => body.order.indexOf(id) !== i);
      if (missing.length || unknown.length || duplicated.length) {
        const message = [
          missing.length ? `missing: ${missing.join(', ')}` : '',
          unknown.length ? `not seeds of this project: ${unknown.join(', ')}` : '',
          duplicated.length ? `named twice: ${duplicated.join(', ')}` : '',
        ]
          .filter(Boolean)
          .join('; ');
        throw new ApiError(422, 'validation_failed', `body.order must name each seed of the project exactly once (${message})`, {
          fields: [{ field: 'body.order', message }],
          missing,
          unknown,
          duplicated,
        });
      }
      await deps.db.transaction().execute(async (tx) => {
        for (const [i, id] of body.order.entries()) {
          await tx.updateTable('seeds').set({ position: i + 1, updated_at: sql`now()` }).where('id', '=', id).execute();
        }
      });
      ctx.body = body.order.map((id, i) => ({ id, position: i + 1 }));
    },
  });
}
