import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute } from '../../route';
import type { ApiDeps } from '../../deps';
import { answerPage, pagination } from '../../pagination';
import { auditEntrySchema, auditEntryView } from '../../views/orgs';
import { listAudit } from '../../../db/queries/audit';

export function registerAuditLogRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/orgs/audit-log',
    summary: 'The audit log, newest first: every mutating request (refused ones too) and the platform’s own scheduled actions. Append-only',
    tags: ['Audit log'],
    action: 'audit.read',
    query: pagination,
    responses: { 200: { description: 'Entries; X-Total-Count has the total', schema: z.array(auditEntrySchema) } },
    handler: async (ctx, { query, auth }) => {
      const { rows, total } = await listAudit(deps.db, auth.orgId, query);
      answerPage(ctx, total, rows.map(auditEntryView));
    },
  });
}
