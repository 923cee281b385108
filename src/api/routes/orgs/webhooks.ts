import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { sql } from 'kysely';
import { z } from 'zod';
import { defineRoute } from '../../route';
import type { ApiDeps } from '../../deps';
import { notFound } from '../../errors';
import { webhookParams } from '../../params';
import { answerPage, nonEmptyPatch, pagination } from '../../pagination';
import { deliverySchema, deliveryView, webhookSchema, webhookView } from '../../views/orgs';
import { findWebhook, listDeliveries, listWebhooks } from '../../../db/queries/webhooks';
import { eventFilterProblem, generateWebhookSecret, webhookUrlProblem } from '../../../domain/webhooks';
import { encryptSecret } from '../../../domain/secrets';
import { newId } from '../../../domain/ids';
import { CONTROL_CHARS } from '../../../domain/names';
import { deliveryWorkflowId } from '../../../operations/webhooks';

export function registerWebhookRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  const url = z
    .string()
    .max(2048)
    .refine((s) => !CONTROL_CHARS.test(s), { message: 'must not contain control characters' })
    .superRefine((s, ctx) => {
      if (CONTROL_CHARS.test(s)) return;
      const bad = webhookUrlProblem(s, deps.config.webhooks.allowPrivate);
      if (bad) ctx.addIssue({ code: 'custom', message: bad });
    })
    .openapi({ description: 'http(s) URL; private and loopback addresses only with LAMPION_WEBHOOK_ALLOW_PRIVATE' });
  const events = z
    .array(
      z.string().superRefine((s, ctx) => {
        const bad = eventFilterProblem(s);
        if (bad) ctx.addIssue({ code: 'custom', message: bad });
      }),
    )
    .min(1)
    .max(50)
    .openapi({ description: 'Event names, families ("branch.*") or "*"' });
  const find = async (orgId: string, id: string) => {
    const w = await findWebhook(deps.db, orgId, id);
    if (!w) throw notFound('webhook', id);
    return w;
  };

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/orgs/webhooks',
    summary: 'List webhooks',
    tags: ['Webhooks'],
    action: 'webhook.read',
    query: pagination,
    responses: { 200: { description: 'Webhooks, newest first', schema: z.array(webhookSchema) } },
    handler: async (ctx, { query, auth }) => {
      const { rows, total } = await listWebhooks(deps.db, auth.orgId, query);
      answerPage(ctx, total, rows.map(webhookView));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/orgs/webhooks',
    summary: 'Create a webhook; the signing secret (Standard Webhooks, whsec_…) is in this answer only',
    tags: ['Webhooks'],
    action: 'webhook.write',
    body: z.object({ url, events: events.default(['*']), enabled: z.boolean().default(true) }).strict(),
    responses: { 201: { description: 'Created', schema: webhookSchema.extend({ secret: z.string() }) } },
    handler: async (ctx, { body, auth }) => {
      const secret = generateWebhookSecret();
      const row = await deps.db
        .insertInto('webhooks')
        .values({ id: newId('webhook'), org_id: auth.orgId, url: body.url, events: JSON.stringify(body.events), enabled: body.enabled, secret_enc: encryptSecret(secret, deps.secretKey) })
        .returningAll()
        .executeTakeFirstOrThrow();
      ctx.status = 201;
      ctx.body = { ...webhookView(row), secret };
    },
  });

  defineRoute(router, registry, deps, {
    method: 'patch',
    path: '/v1/orgs/webhooks/{id}',
    summary: 'Change a webhook’s URL, events or enabled; a disabled webhook receives nothing, pending retries included',
    tags: ['Webhooks'],
    action: 'webhook.write',
    params: webhookParams,
    body: nonEmptyPatch(z.object({ url: url.optional(), events: events.optional(), enabled: z.boolean().optional() })),
    responses: { 200: { description: 'Updated', schema: webhookSchema } },
    handler: async (ctx, { params, body, auth }) => {
      await find(auth.orgId, params.id);
      const row = await deps.db
        .updateTable('webhooks')
        .set({ ...(body.url !== undefined && { url: body.url }), ...(body.events !== undefined && { events: JSON.stringify(body.events) }), ...(body.enabled !== undefined && { enabled: body.enabled }) })
        .where('id', '=', params.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      ctx.body = webhookView(row);
    },
  });

  defineRoute(router, registry, deps, {
    method: 'delete',
    path: '/v1/orgs/webhooks/{id}',
    summary: 'Delete a webhook; deliveries still retrying stop',
    tags: ['Webhooks'],
    action: 'webhook.write',
    params: webhookParams,
    responses: { 204: { description: 'Deleted' } },
    handler: async (ctx, { params, auth }) => {
      await find(auth.orgId, params.id);
      await deps.db.updateTable('webhooks').set({ deleted_at: sql`now()`, enabled: false }).where('id', '=', params.id).execute();
      ctx.status = 204;
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/orgs/webhooks/{id}/deliveries',
    summary: 'A webhook’s deliveries, newest first, each with its attempts and its Temporal workflow id',
    tags: ['Webhooks'],
    action: 'webhook.read',
    params: webhookParams,
    query: pagination,
    responses: { 200: { description: 'Deliveries', schema: z.array(deliverySchema) } },
    handler: async (ctx, { params, query, auth }) => {
      await find(auth.orgId, params.id);
      const { rows, attempts, total } = await listDeliveries(deps.db, params.id, query);
      answerPage(
        ctx,
        total,
        rows.map((d) => deliveryView(d, attempts.filter((a) => a.delivery_id === d.id), deliveryWorkflowId(d.id))),
      );
    },
  });
}
