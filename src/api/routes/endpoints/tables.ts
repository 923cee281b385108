import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute, errorEnvelope } from '../../route';
import type { ApiDeps } from '../../deps';
import { ApiError, notFound } from '../../errors';
import type { AuthContext } from '../../auth';
import { databaseName, databaseQuery, endpointParams, identifier } from '../../params';
import { consoleEndpoint, consoleOptions, inTransaction, queryRows, Session, withSession } from '../../executor';
import {
  addColumnSql,
  alterColumnSql,
  checkColumnType,
  checkDefault,
  ColumnSpec,
  createTableSql,
  dropColumnSql,
  dropTableSql,
  renameColumnSql,
  renameTableSql,
  tableColumnsSql,
} from '../../../domain/pgsql/tables';

/**
 * Tables and columns by DDL the API builds: names quoted, types read by the Postgres grammar,
 * defaults checked (domain/pgsql/tables.ts). `{table}` is `table` (in public) or `schema.table`.
 */
const tableRef = z
  .string()
  .min(1)
  .transform((s, ctx) => {
    const dot = s.indexOf('.');
    const ref = dot < 0 ? { schema: 'public', name: s } : { schema: s.slice(0, dot), name: s.slice(dot + 1) };
    for (const [what, v] of [['schema', ref.schema], ['table', ref.name]] as const) {
      const r = identifier(what).safeParse(v);
      if (!r.success) {
        ctx.addIssue({ code: 'custom', message: r.error.issues[0].message });
        return z.NEVER;
      }
    }
    return ref;
  });
const tableParams = endpointParams.extend({ table: tableRef });

const columnInput = z.object({
  name: identifier('column'),
  type: z.string().min(1).max(200),
  primary_key: z.boolean().optional(),
  nullable: z.boolean().optional(),
  default: z.string().max(500).nullable().optional(),
});

async function columnSpec(c: z.infer<typeof columnInput>, table: string): Promise<ColumnSpec> {
  const type = await checkColumnType(c.type);
  if (!type.ok) throw new ApiError(422, 'validation_failed', `column ${c.name}: ${type.message}`, { field: 'type' });
  let defaultSql: string | undefined;
  if (c.default !== undefined && c.default !== null) {
    const d = await checkDefault(c.default, table);
    if (!d.ok) throw new ApiError(422, 'validation_failed', `column ${c.name}: default: ${d.message}`, { field: 'default' });
    defaultSql = d.sql;
  }
  return { name: c.name, type: type.sql, primaryKey: c.primary_key, nullable: c.primary_key ? false : c.nullable, defaultSql };
}

async function requireTable(s: Session, schema: string, table: string): Promise<void> {
  const r = await queryRows(s, { text: "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')", values: [schema, table] });
  if (!r.length) throw notFound('table', `${schema}.${table}`);
}

async function requireColumn(s: Session, schema: string, table: string, column: string): Promise<void> {
  await requireTable(s, schema, table);
  const cols = await queryRows<{ name: string }>(s, tableColumnsSql(schema, table));
  if (!cols.some((c) => c.name === column)) throw notFound('column', `${schema}.${table}.${column}`);
}

export function registerTableRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  const base = '/v1/projects/{project_id}/endpoints/{endpoint_id}/tables';
  const run = async <T>(auth: AuthContext, params: { project_id: string; endpoint_id: string }, database: string, fn: (s: Session) => Promise<T>): Promise<T> => {
    const ep = await consoleEndpoint(deps, auth, params.project_id, params.endpoint_id);
    return withSession(deps, auth, ep, consoleOptions(deps, database), fn);
  };

  defineRoute(router, registry, deps, {
    method: 'post',
    path: base,
    summary: 'Create a table: columns with type (read by the Postgres grammar), primary key, nullable, default (constants and allowlisted functions)',
    tags: ['Tables'],
    action: 'table.write',
    params: endpointParams,
    body: z.object({
      name: identifier('name'),
      schema: identifier('schema').default('public'),
      columns: z.array(columnInput).min(1).max(1600),
      database: databaseName,
    }),
    responses: {
      201: { description: 'Created', schema: z.object({ table: z.string(), schema: z.string(), columns: z.array(z.string()) }) },
      409: { description: 'A table of that name exists (42P07)', schema: errorEnvelope },
    },
    handler: async (ctx, { params, body, auth }) => {
      const names = body.columns.map((c) => c.name);
      if (new Set(names).size !== names.length) throw new ApiError(422, 'validation_failed', 'column names must be distinct');
      const specs: ColumnSpec[] = [];
      for (const c of body.columns) specs.push(await columnSpec(c, body.name));
      await run(auth, params, body.database, (s) => queryRows(s, createTableSql(body.schema, body.name, specs)));
      ctx.status = 201;
      ctx.body = { table: body.name, schema: body.schema, columns: names };
    },
  });

  defineRoute(router, registry, deps, {
    method: 'delete',
    path: `${base}/{table}`,
    summary: 'Drop a table (refused with the dependents when views or foreign keys depend on it: 2BP01)',
    tags: ['Tables'],
    action: 'table.write',
    params: tableParams,
    query: databaseQuery,
    responses: { 204: { description: 'Dropped' }, 404: { description: 'No such table', schema: errorEnvelope }, 409: { description: 'Objects depend on it', schema: errorEnvelope } },
    handler: async (ctx, { params, query, auth }) => {
      await run(auth, params, query.database, async (s) => {
        await requireTable(s, params.table.schema, params.table.name);
        await queryRows(s, dropTableSql(params.table.schema, params.table.name));
      });
      ctx.status = 204;
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: `${base}/{table}/rename`,
    summary: 'Rename a table',
    tags: ['Tables'],
    action: 'table.write',
    params: tableParams,
    body: z.object({ new_name: identifier('new_name'), database: databaseName }),
    responses: { 200: { description: 'Renamed', schema: z.object({ old_name: z.string(), new_name: z.string() }) }, 404: { description: 'No such table', schema: errorEnvelope } },
    handler: async (ctx, { params, body, auth }) => {
      await run(auth, params, body.database, async (s) => {
        await requireTable(s, params.table.schema, params.table.name);
        await queryRows(s, renameTableSql(params.table.schema, params.table.name, body.new_name));
      });
      ctx.body = { old_name: params.table.name, new_name: body.new_name };
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: `${base}/{table}/columns`,
    summary: 'Add a column',
    tags: ['Tables'],
    action: 'table.write',
    params: tableParams,
    body: columnInput.extend({ database: databaseName }),
    responses: { 201: { description: 'Added', schema: z.object({ column: z.string(), type: z.string() }) }, 404: { description: 'No such table', schema: errorEnvelope }, 409: { description: 'A column of that name exists (42701)', schema: errorEnvelope } },
    handler: async (ctx, { params, body, auth }) => {
      const spec = await columnSpec(body, params.table.name);
      await run(auth, params, body.database, async (s) => {
        await requireTable(s, params.table.schema, params.table.name);
        await queryRows(s, addColumnSql(params.table.schema, params.table.name, spec));
      });
      ctx.status = 201;
      ctx.body = { column: body.name, type: spec.type };
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: `${base}/{table}/columns/rename`,
    summary: 'Rename a column',
    tags: ['Tables'],
    action: 'table.write',
    params: tableParams,
    body: z.object({ old_name: identifier('old_name'), new_name: identifier('new_name'), database: databaseName }),
    responses: { 200: { description: 'Renamed', schema: z.object({ old_name: z.string(), new_name: z.string() }) }, 404: { description: 'No such table or column', schema: errorEnvelope } },
    handler: async (ctx, { params, body, auth }) => {
      await run(auth, params, body.database, async (s) => {
        await requireColumn(s, params.table.schema, params.table.name, body.old_name);
        await queryRows(s, renameColumnSql(params.table.schema, params.table.name, body.old_name, body.new_name));
      });
      ctx.body = { old_name: body.old_name, new_name: body.new_name };
    },
  });

  const columnParams = tableParams.extend({ column: identifier('column') });
  defineRoute(router, registry, deps, {
    method: 'delete',
    path: `${base}/{table}/columns/{column}`,
    summary: 'Drop a column (refused with the dependents: 2BP01)',
    tags: ['Tables'],
    action: 'table.write',
    params: columnParams,
    query: databaseQuery,
    responses: { 204: { description: 'Dropped' }, 404: { description: 'No such table or column', schema: errorEnvelope }, 409: { description: 'Objects depend on it', schema: errorEnvelope } },
    handler: async (ctx, { params, query, auth }) => {
      await run(auth, params, query.database, async (s) => {
        await requireColumn(s, params.table.schema, params.table.name, params.column);
        await queryRows(s, dropColumnSql(params.table.schema, params.table.name, params.column));
      });
      ctx.status = 204;
    },
  });

  defineRoute(router, registry, deps, {
    method: 'patch',
    path: `${base}/{table}/columns/{column}`,
    summary: 'Alter a column: type, nullable, default (null drops it); all changes in one statement',
    tags: ['Tables'],
    action: 'table.write',
    params: columnParams,
    body: z
      .object({ type: z.string().min(1).max(200).optional(), nullable: z.boolean().optional(), default: z.string().max(500).nullable().optional(), database: databaseName })
      .strict()
      .refine((b) => b.type !== undefined || b.nullable !== undefined || b.default !== undefined, { message: 'nothing to change: give type, nullable or default' }),
    responses: {
      200: { description: 'The column as it is now', schema: z.object({ column: z.string(), type: z.string(), nullable: z.boolean(), default: z.string().nullable() }) },
      404: { description: 'No such table or column', schema: errorEnvelope },
      422: { description: 'A bad type or default, or existing rows that do not convert or are null (22xxx, 23502)', schema: errorEnvelope },
    },
    handler: async (ctx, { params, body, auth }) => {
      const change: { type?: string; nullable?: boolean; defaultSql?: string | null } = {};
      if (body.type !== undefined) {
        const t = await checkColumnType(body.type);
        if (!t.ok) throw new ApiError(422, 'validation_failed', t.message, { field: 'type' });
        change.type = t.sql;
      }
      if (body.nullable !== undefined) change.nullable = body.nullable;
      if (body.default === null) change.defaultSql = null;
      else if (body.default !== undefined) {
        const d = await checkDefault(body.default, params.table.name);
        if (!d.ok) throw new ApiError(422, 'validation_failed', `default: ${d.message}`, { field: 'default' });
        change.defaultSql = d.sql;
      }
      const now = await run(auth, params, body.database, async (s) => {
        await requireColumn(s, params.table.schema, params.table.name, params.column);
        return inTransaction(s, async () => {
          await queryRows(s, alterColumnSql(params.table.schema, params.table.name, params.column, change));
          const cols = await queryRows<{ name: string; type: string; nullable: boolean; default: string | null }>(s, tableColumnsSql(params.table.schema, params.table.name));
          return cols.find((c) => c.name === params.column)!;
        });
      });
      ctx.body = { column: now.name, type: now.type, nullable: now.nullable, default: now.default };
    },
  });
}
