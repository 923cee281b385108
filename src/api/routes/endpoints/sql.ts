import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { markReadOnly } from '../../audit';
import { defineRoute, errorEnvelope } from '../../route';
import type { ApiDeps } from '../../deps';
import { databaseName, endpointParams } from '../../params';
import { consoleEndpoint, withSession } from '../../executor';
import { planSql, runSql } from '../../console';

/** Rows a request gets unless it asks for fewer or more (up to LAMPION_SQL_MAX_ROWS). */
export const DEFAULT_MAX_ROWS = 1000;
/** The largest query text accepted (the body limit is larger). */
const MAX_QUERY_CHARS = 1_000_000;

const param = z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(z.unknown()), z.record(z.string(), z.unknown())]);

const statementResult = z
  .object({
    command: z.string().openapi({ description: 'The command tag: SELECT, INSERT, CREATE TABLE, …' }),
    columns: z.array(z.string()),
    column_types: z.array(z.string()),
    rows: z.array(z.record(z.string(), z.unknown())).openapi({ description: 'bigint, numeric, money, bytea, dates and times as the server prints them (strings), so nothing loses precision' }),
    row_count: z.number().nullable().openapi({ description: 'Rows returned or affected; null when truncated' }),
    truncated: z.boolean().openapi({ description: 'More rows than max_rows: only the first max_rows are here' }),
    duration: z.number().openapi({ description: 'ms' }),
  })
  .openapi('SqlStatementResult');

const metaResult = z
  .object({
    command: z.string(),
    output: z.string().openapi({ description: 'What psql prints' }),
    tables: z.array(z.object({ title: z.string().nullable(), columns: z.array(z.string()), rows: z.array(z.array(z.string())), footers: z.array(z.string()) })),
    duration: z.number(),
  })
  .openapi('SqlMetaCommandResult');

export function registerSqlRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  const limits = deps.config.sql;
  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/projects/{project_id}/endpoints/{endpoint_id}/sql',
    summary:
      'Run SQL on the endpoint as its user role (cloud_admin): one statement (with $1… params), a script (split by the Postgres parser and run in order; ' +
      'the first error stops it; a transaction left open at the end is rolled back), or psql meta-commands (\\d, \\dt, \\l, …), one per line. Wakes a suspended compute.',
    tags: ['SQL'],
    action: 'sql.execute',
    params: endpointParams,
    body: z.object({
      query: z.string().min(1).max(MAX_QUERY_CHARS),
      database: databaseName,
      params: z.array(param).max(65535).optional(),
      timeout_ms: z.number().int().min(1).max(limits.maxTimeoutMs).optional().openapi({ description: `statement_timeout per statement; default ${limits.timeoutMs}` }),
      max_rows: z.number().int().min(0).max(limits.maxRows).optional().openapi({ description: `Rows kept per statement; default ${Math.min(DEFAULT_MAX_ROWS, limits.maxRows)}` }),
    }),
    responses: {
      200: {
        description: 'One statement: its result. A script: {results, duration}. One meta-command: its result; several: {results, duration}',
        schema: z.union([statementResult, metaResult, z.object({ results: z.array(z.union([statementResult, metaResult])), duration: z.number() })]),
      },
      403: { description: 'insufficient_privilege (42501), among others', schema: errorEnvelope },
      404: { description: 'No such project or endpoint; or the SQL named a missing table, column, function or database (42P01, 42703, 42883, 3D000)', schema: errorEnvelope },
      408: { description: 'statement_timeout (57014)', schema: errorEnvelope },
      409: { description: 'Duplicate object, constraint violation, dependent objects (2BP01), lock or serialization failure', schema: errorEnvelope },
      422: {
        description:
          'Syntax error (nothing ran; position, line, column), or another SQL error. Errors carry sqlstate and position; in a script they name the failing statement (statement, statement_text) and carry the results of the statements before it',
        schema: errorEnvelope,
      },
    },
    handler: async (ctx, { params, body, auth }) => {
      const req = { query: body.query, params: body.params, database: body.database, maxRows: body.max_rows ?? Math.min(DEFAULT_MAX_ROWS, limits.maxRows) };
      const ep = await consoleEndpoint(deps, auth, params.project_id, params.endpoint_id);
      // Parsed before the compute is touched: a syntax error wakes nothing.
      const plan = await planSql(req);
      // Plain reads (SELECT, SHOW, EXPLAIN without ANALYZE, psql's describe commands) are not audited; anything else is.
      if (plan.kind === 'meta' || plan.statements.every((s) => s.leavesNoState)) markReadOnly(ctx);
      ctx.body = await withSession(deps, auth, ep, { database: body.database, timeoutMs: body.timeout_ms ?? limits.timeoutMs }, (s) => runSql(s, req, plan));
    },
  });
}
