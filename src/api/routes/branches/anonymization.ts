import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { answerSlice, pagination } from '../../pagination';
import { defineRoute } from '../../route';
import type { ApiDeps } from '../../deps';
import { ApiError, conflict, notFound } from '../../errors';
import { answerAccepted, runOperation } from '../../operationRunner';
import { branchParams, databaseName, identifier } from '../../params';
import { requireBranch, requireEndpoint } from '../../lookup';
import { consoleOptions, queryRows, withSession } from '../../executor';
import type { AuthContext } from '../../auth';
import type { MaskingStateRow } from '../../../db/schema';
import { hasRole, POLICY } from '../../../domain/rbac';
import { branchMasking } from '../../../operations';
import { ANALYST_ROLE, MASKING_FUNCTIONS, maskingText, parseMaskingFunction } from '../../../domain/masking';
import { idPattern, newId } from '../../../domain/ids';
import { decryptSecret, encryptSecret, generatePassword } from '../../../domain/secrets';
import { proxyConnectionString } from '../../../domain/connectionString';
import { anonymizationSchema, maskingRuleSchema, maskingRuleView } from '../../views/anonymization';

const ruleParams = branchParams.extend({ rule_id: z.string().regex(idPattern('maskingRule'), 'not a masking rule id') });

export function registerAnonymizationRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  const base = '/v1/projects/{project_id}/branches/{branch_id}/anonymization';

  async function branchWithCompute(auth: AuthContext, p: { project_id: string; branch_id: string }) {
    const b = await requireBranch(deps, auth, p.project_id, p.branch_id);
    if (b.status !== 'ready') throw conflict(`branch ${b.id} is ${b.status}`);
    if (!b.compute_id) throw conflict(`branch ${b.id} has no compute`);
    return { branch: b, endpoint: await requireEndpoint(deps, auth, b.project_id, b.compute_id) };
  }

  async function status(auth: AuthContext, branchId: string, endpointId: string | null) {
    const row = await deps.db.selectFrom('branches').select(['anonymization']).where('id', '=', branchId).executeTakeFirstOrThrow();
    // An analyst sees only branches with masking on: any other is not there for them.
    if (auth.role === 'analyst' && !row.anonymization) throw notFound('branch', branchId);
    const rules = await deps.db.selectFrom('anonymization_rules').selectAll().where('branch_id', '=', branchId).orderBy('created_at').orderBy('id').execute();
    const s = row.anonymization;
    // The analyst string is a credential: for analysts and for those who see connection secrets.
    const mayConnect = auth.role === 'analyst' || hasRole(auth.role, POLICY['endpoint.secrets']);
    const cs =
      s && endpointId && mayConnect
        ? proxyConnectionString({ user: ANALYST_ROLE, password: decryptSecret(s.password_enc, deps.secretKey), host: deps.config.publicHost, port: deps.proxyPort(), endpointId, database: s.database })
        : null;
    return { enabled: s !== null, analyst_connection_string: cs, database: s?.database ?? null, rules: rules.map(maskingRuleView) };
  }

  /** Makes the masked views again after a rule changed, when masking is on. */
  async function reapply(ctx: any, auth: AuthContext, b: { id: string; project_id: string; host_id: string; anonymization: MaskingStateRow | null }, endpointId: string) {
    const state = b.anonymization;
    if (!state) return true;
    const outcome = await runOperation(deps, auth, branchMasking, {
      projectId: b.project_id,
      branchId: b.id,
      endpointId,
      hostId: b.host_id,
      action: 'apply',
      database: state.database,
      analystPasswordSealed: state.password_enc,
    });
    if (!outcome.done) {
      answerAccepted(ctx, b.project_id, outcome.operationId, { status: 'applying' });
      return false;
    }
    return true;
  }

  defineRoute(router, registry, deps, {
    method: 'get',
    path: base,
    summary: 'Masking status of a branch: enabled, the analyst connection string, the rules',
    tags: ['Anonymization'],
    action: 'anonymization.read',
    params: branchParams,
    responses: { 200: { description: 'Status', schema: anonymizationSchema } },
    handler: async (ctx, { params, auth }) => {
      const b = await requireBranch(deps, auth, params.project_id, params.branch_id);
      ctx.body = await status(auth, b.id, b.compute_id);
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: `${base}/functions`,
    summary: 'The masking functions a rule may use (the allowlist)',
    tags: ['Anonymization'],
    action: 'anonymization.read',
    params: branchParams,
    query: pagination,
    responses: { 200: { description: 'Allowed functions', schema: z.array(z.object({ function: z.string(), description: z.string() })) } },
    handler: async (ctx, { params, auth, query }) => {
      const b = await requireBranch(deps, auth, params.project_id, params.branch_id);
      await status(auth, b.id, null);
      answerSlice(ctx, query, MASKING_FUNCTIONS.map((f) => ({ function: f.function, description: f.description })));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: `${base}/rules`,
    summary: 'Masking rules of a branch',
    tags: ['Anonymization'],
    action: 'anonymization.read',
    params: branchParams,
    query: pagination,
    responses: { 200: { description: 'Rules, oldest first', schema: z.array(maskingRuleSchema) } },
    handler: async (ctx, { params, auth, query }) => {
      const b = await requireBranch(deps, auth, params.project_id, params.branch_id);
      answerSlice(ctx, query, (await status(auth, b.id, b.compute_id)).rules);
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: `${base}/rules`,
    summary: 'Add a masking rule for a column (applied at once when masking is on)',
    tags: ['Anonymization'],
    action: 'anonymization.write',
    params: branchParams,
    body: z
      .object({
        schema_name: identifier('schema').default('public'),
        table_name: identifier('table'),
        column_name: identifier('column'),
        masking_function: z.string().max(200),
      })
      .strict(),
    responses: {
      201: { description: 'Added', schema: maskingRuleSchema },
      409: { description: 'The column already has a rule' },
      422: { description: 'Not an allowed masking function, or no such table or column' },
    },
    handler: async (ctx, { params, body, auth }) => {
      const { branch, endpoint } = await branchWithCompute(auth, params);
      const parsed = await parseMaskingFunction(body.masking_function);
      if (!parsed.ok) throw new ApiError(422, 'validation_failed', `masking_function ${parsed.message}`, { fields: [{ field: 'body.masking_function', message: parsed.message }] });
      const database = branch.anonymization?.database ?? 'postgres';
      const found = await withSession(deps, auth, endpoint, consoleOptions(deps, database), (s) =>
        queryRows(s, {
          text: `SELECT 1 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3 AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')`,
          values: [body.schema_name, body.table_name, body.column_name],
        }),
      );
      if (found.length === 0) throw new ApiError(422, 'validation_failed', `no column ${body.column_name} in table ${body.schema_name}.${body.table_name} of database ${database}`);
      const id = newId('maskingRule');
      const inserted = await deps.db
        .insertInto('anonymization_rules')
        .values({ id, branch_id: branch.id, schema_name: body.schema_name, table_name: body.table_name, column_name: body.column_name, masking_function: maskingText(parsed.masking) })
        .onConflict((oc) => oc.constraint('anonymization_rules_column_uq').doNothing())
        .returningAll()
        .executeTakeFirst();
      if (!inserted) throw conflict(`column ${body.schema_name}.${body.table_name}.${body.column_name} already has a masking rule`);
      if (!(await reapply(ctx, auth, branch, endpoint.id))) return;
      ctx.status = 201;
      ctx.body = maskingRuleView(inserted);
    },
  });

  defineRoute(router, registry, deps, {
    method: 'delete',
    path: `${base}/rules/{rule_id}`,
    summary: 'Delete a masking rule (the column is masked as NULL while masking is on, never shown raw)',
    tags: ['Anonymization'],
    action: 'anonymization.write',
    params: ruleParams,
    responses: { 204: { description: 'Deleted' }, 404: { description: 'No such rule' } },
    handler: async (ctx, { params, auth }) => {
      const { branch, endpoint } = await branchWithCompute(auth, params);
      const gone = await deps.db.deleteFrom('anonymization_rules').where('id', '=', params.rule_id).where('branch_id', '=', branch.id).returning('id').executeTakeFirst();
      if (!gone) throw notFound('masking rule', params.rule_id);
      if (!(await reapply(ctx, auth, branch, endpoint.id))) return;
      ctx.status = 204;
    },
  });

  for (const action of ['enable', 'disable'] as const) {
    defineRoute(router, registry, deps, {
      method: 'post',
      path: `${base}/${action}`,
      summary:
        action === 'enable'
          ? 'Enable dynamic masking on a branch (never the primary): the lampion_analyst role sees masked views of every table and nothing else'
          : 'Disable masking: the analyst role, masked views and masking functions removed',
      tags: ['Anonymization'],
      action: 'anonymization.write',
      params: branchParams,
      body: z.object({ database: databaseName }).strict().optional(),
      responses: {
        200: { description: 'New state', schema: anonymizationSchema },
        202: { description: 'Still running; poll the operation' },
        409: { description: 'The primary branch, or the branch is busy' },
      },
      handler: async (ctx, { params, body, auth }) => {
        const { branch, endpoint } = await branchWithCompute(auth, params);
        if (action === 'enable' && branch.is_primary) throw conflict(`masking is never enabled on the primary branch (production): make a branch of it and enable masking there`);
        const outcome = await runOperation(deps, auth, branchMasking, {
          projectId: branch.project_id,
          branchId: branch.id,
          endpointId: endpoint.id,
          hostId: branch.host_id,
          action: action === 'enable' ? 'apply' : 'disable',
          database: body?.database ?? 'postgres',
          analystPasswordSealed: encryptSecret(generatePassword(), deps.secretKey),
        });
        if (!outcome.done) return answerAccepted(ctx, branch.project_id, outcome.operationId, { status: action === 'enable' ? 'enabling' : 'disabling' });
        ctx.body = await status(auth, branch.id, endpoint.id);
      },
    });
  }
}
