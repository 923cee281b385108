import Koa from 'koa';
import Router from '@koa/router';
import { bodyParser } from '@koa/bodyparser';
import { randomUUID } from 'node:crypto';
import { OpenAPIRegistry, OpenApiGeneratorV31 } from '@asteasolutions/zod-to-openapi';
import { ApiError, temporalUnavailable } from './errors';
import type { ApiDeps } from './deps';
import { registerProjectRoutes } from './routes/projects';
import { registerOperationRoutes } from './routes/operations';
import { registerHealthRoutes } from './routes/health';
import { registerBranchRoutes } from './routes/branches';
import { registerSeedRoutes } from './routes/seeds';
import { registerEndpointRoutes } from './routes/endpoints';
import { registerDumpRoutes } from './routes/endpoints/dump';
import { registerSqlRoutes } from './routes/endpoints/sql';
import { registerDatabaseRoutes } from './routes/endpoints/databases';
import { registerRoleRoutes } from './routes/endpoints/roles';
import { registerPermissionRoutes } from './routes/endpoints/permissions';
import { registerTableRoutes } from './routes/endpoints/tables';
import { registerExtensionRoutes } from './routes/endpoints/extensions';
import { registerLogRoutes } from './routes/endpoints/logs';
import { registerAnalyseRoutes } from './routes/endpoints/analyse';
import { registerSchemaRoutes } from './routes/schema';
import { registerPlanRoutes } from './routes/plans';
import { registerUsageRoutes } from './routes/usage';
import { registerResidencyRoutes } from './routes/residency';
import { registerMetricsRoutes } from './routes/metrics';
import { registerBackupRoutes } from './routes/backups';
import { registerReplicaRoutes } from './routes/branches/replicas';
import { registerMergeRoutes } from './routes/branches/merge';
import { registerReplayRoutes } from './routes/replay';
import { registerAnonymizationRoutes } from './routes/branches/anonymization';
import { registerImportRoutes } from './routes/imports';
import { registerMemberRoutes } from './routes/orgs/members';
import { registerInvitationRoutes } from './routes/orgs/invitations';
import { registerApiKeyRoutes } from './routes/orgs/api-keys';
import { registerAuditLogRoutes } from './routes/orgs/audit-log';
import { registerWebhookRoutes } from './routes/orgs/webhooks';
import { registerDocsRoutes } from './routes/docs';

const REQUEST_ID_RE = /^[A-Za-z0-9._-]{1,128}$/;

export function createApp(deps: ApiDeps): Koa {
  const app = new Koa({ proxy: false });
  const router = new Router();
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', 'bearerAuth', { type: 'http', scheme: 'bearer', description: 'lmp_live_… API key' });

  registerHealthRoutes(router, registry, deps);
  registerProjectRoutes(router, registry, deps);
  registerOperationRoutes(router, registry, deps);
  registerBranchRoutes(router, registry, deps);
  registerSeedRoutes(router, registry, deps);
  registerEndpointRoutes(router, registry, deps);
  registerDumpRoutes(router, registry, deps);
  registerSqlRoutes(router, registry, deps);
  registerDatabaseRoutes(router, registry, deps);
  registerRoleRoutes(router, registry, deps);
  registerPermissionRoutes(router, registry, deps);
  registerTableRoutes(router, registry, deps);
  registerExtensionRoutes(router, registry, deps);
  registerLogRoutes(router, registry, deps);
  registerAnalyseRoutes(router, registry, deps);
  registerSchemaRoutes(router, registry, deps);
  registerPlanRoutes(router, registry, deps);
  registerUsageRoutes(router, registry, deps);
  registerResidencyRoutes(router, registry, deps);
  registerMetricsRoutes(router, registry, deps);
  registerBackupRoutes(router, registry, deps);
  registerReplicaRoutes(router, registry, deps);
  registerMergeRoutes(router, registry, deps);
  registerReplayRoutes(router, registry, deps);
  registerAnonymizationRoutes(router, registry, deps);
  registerImportRoutes(router, registry, deps);
  registerMemberRoutes(router, registry, deps);
  registerInvitationRoutes(router, registry, deps);
  registerApiKeyRoutes(router, registry, deps);
  registerAuditLogRoutes(router, registry, deps);
  registerWebhookRoutes(router, registry, deps);

  const document = new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'Lampion API',
      version: '1.0.0',
      description: [
        'Projects, branches and computes of self-hosted PostgreSQL.',
        '',
        '**Authentication**: `Authorization: Bearer lmp_live_…`. Each operation names the least role it needs (`x-lampion-min-role`: analyst < viewer < developer < admin < owner); a key acts as the lower of its own role and its member’s.',
        '',
        '**Lists**: `?limit=&offset=` (default 50, at most 100; metrics history 5000), the page as a JSON array, the total in `X-Total-Count`.',
        '',
        '**Rate limits**: per API key and minute, by plan; every authenticated answer has `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (Unix seconds); beyond it, 429 with `Retry-After`.',
        '',
        '**Idempotency**: a POST with `Idempotency-Key` answers a retry with the first success (`Idempotent-Replayed: true`) for 24 h; the same key with another body is 422.',
        '',
        '**Errors**: `{"error":{"code","message","details","request_id"}}`.',
      ].join('\n'),
    },
    servers: [{ url: '/' }],
  });
  router.get('/v1/openapi.json', (ctx) => {
    ctx.body = document;
  });
  registerDocsRoutes(router);

  // Request id and access log first, so every later error carries both.
  app.use(async (ctx, next) => {
    const incoming = ctx.get('x-request-id');
    const requestId = REQUEST_ID_RE.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = requestId;
    ctx.set('X-Request-Id', requestId);
    const log = deps.logger.child({ request_id: requestId });
    ctx.state.log = log;
    const started = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      log.info({ method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(ms * 10) / 10, org: ctx.state.auth?.orgId }, 'request');
    }
  });

  app.use(async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        throw new ApiError(404, 'not_found', `no route for ${ctx.method} ${ctx.path}`);
      }
    } catch (err) {
      const unavailable = err instanceof ApiError ? undefined : temporalUnavailable(err);
      const e =
        err instanceof ApiError
          ? err
          : unavailable ?? new ApiError(500, 'internal', 'internal error; the request id identifies it in the logs', undefined);
      if (unavailable) ctx.state.log?.warn({ err: (err as Error).message }, 'temporal unavailable');
      else if (!(err instanceof ApiError)) ctx.state.log?.error({ err }, 'unhandled error');
      for (const [k, v] of Object.entries(e.headers ?? {})) ctx.set(k, v);
      ctx.status = e.status;
      ctx.body = { error: { code: e.code, message: e.message, ...(e.details === undefined ? {} : { details: e.details }), request_id: ctx.state.requestId } };
    }
  });

  app.use(
    bodyParser({
      enableTypes: ['json'],
      jsonLimit: '1mb',
      onError: (err) => {
        const tooLarge = (err as { status?: number }).status === 413;
        throw tooLarge
          ? new ApiError(413, 'payload_too_large', 'request body exceeds 1 MB')
          : new ApiError(400, 'malformed_json', `request body is not valid JSON: ${err.message}`);
      },
    }),
  );
  app.use(router.routes());
  // A path that exists but not with this method (TRACE, PUT on a list, …) is a 405 naming the
  // methods it has; OPTIONS answers with the same list.
  app.use(async (ctx, next) => {
    await next();
    if (ctx.body !== undefined || ctx.status !== 404) return;
    const matched = router.match(ctx.path, ctx.method);
    if (!matched.path.length || matched.route) return;
    const allowed = [...new Set(matched.path.flatMap((layer) => layer.methods))].filter((m) => m !== 'OPTIONS').concat('OPTIONS');
    ctx.set('Allow', allowed.join(', '));
    if (ctx.method === 'OPTIONS') {
      ctx.status = 204;
      return;
    }
    throw new ApiError(405, 'method_not_allowed', `${ctx.method} is not allowed on ${ctx.path}; allowed: ${allowed.join(', ')}`, undefined, { Allow: allowed.join(', ') });
  });
  return app;
}
