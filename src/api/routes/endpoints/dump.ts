import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute, errorEnvelope } from '../../route';
import type { ApiDeps } from '../../deps';
import { ApiError } from '../../errors';
import { databaseName, endpointParams } from '../../params';
import { requireEndpoint } from '../../lookup';
import { directUserAccess, requireRunningCompute } from '../../compute';
import { databaseExtensions, startDump } from '../../dump';
import { touchEndpoint } from '../../../db/queries/endpoints';
import {
  classifyDumpFailure,
  dumpContentDisposition,
  dumpErrorMessage,
  parseTableRef,
  pgDumpCommand,
  TableRef,
} from '../../../domain/pgsql/dump';

const tableName = z
  .string()
  .superRefine((s, ctx) => {
    const r = parseTableRef(s);
    if (!r.ok) ctx.addIssue({ code: 'custom', message: r.message });
  })
  .optional()
  .openapi({ description: 'Dump only this table: `table` (on the default search_path) or `schema.table`, names as stored; `*` and `?` are literal' });

const dumpQuery = z.object({ database: databaseName, table: tableName });

/**
 * The pg_dump of the endpoint's own major: it reads every server of its major and writes output
 * that loads into that major (a newer pg_dump writes settings an older server refuses, e.g.
 * `SET transaction_timeout` of 17+). The newest install is the fallback: pg_dump reads any older
 * server, and refuses newer ones with a clear message.
 */
function pgDumpInstall(deps: ApiDeps, major: number): { binDir: string; major: number } {
  const installs = deps.config.pgInstalls;
  return installs.find((i) => i.major === major) ?? installs[installs.length - 1];
}

export function registerDumpRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/endpoints/{endpoint_id}/dump',
    summary:
      'Download a plain-SQL pg_dump of one database (or one table), streamed as it is produced; wakes a suspended compute. ' +
      'A complete dump contains pg_dump\'s "-- PostgreSQL database dump complete" line and ends with a properly terminated response; ' +
      'a dump that fails midway is cut off (the connection drops without the final chunk).',
    tags: ['Endpoints'],
    action: 'endpoint.dump',
    params: endpointParams,
    query: dumpQuery,
    responses: {
      200: { description: 'The dump (Content-Disposition names the file)', schema: z.string(), mediaType: 'application/sql' },
      404: { description: 'No such project, endpoint, database or table', schema: errorEnvelope },
      409: { description: 'The endpoint is not running and cannot be woken now (its branch is being reset, or it is being deleted)', schema: errorEnvelope },
      502: { description: 'pg_dump could not reach the compute or failed before writing anything', schema: errorEnvelope },
      503: { description: 'The compute is still waking; retry', schema: errorEnvelope },
    },
    handler: async (ctx, { params, query, auth }) => {
      const parsed = query.table === undefined ? undefined : parseTableRef(query.table);
      const table: TableRef | undefined = parsed?.ok ? parsed.value : undefined;
      const found = await requireEndpoint(deps, auth, params.project_id, params.endpoint_id);
      const ep = await requireRunningCompute(deps, auth, found);
      const access = directUserAccess(deps, ep);
      const what = { database: query.database, ...(query.table === undefined ? {} : { table: query.table }) };
      const inspected = await databaseExtensions(access, query.database);
      if (!inspected.ok) {
        if (inspected.sqlState === '3D000') throw new ApiError(404, 'not_found', `database ${JSON.stringify(query.database)} not found on endpoint ${ep.id}`, what);
        const message = inspected.message.split(access.password).join('********');
        throw new ApiError(502, 'compute_unavailable', `could not connect to the compute of endpoint ${ep.id}: ${message}`, what);
      }
      const cmd = pgDumpCommand({ ...pgDumpInstall(deps, ep.pg_version), ...access, database: query.database, table, extensions: inspected.extensions });

      const res = ctx.res;
      const gone = new AbortController();
      const onClose = () => {
        if (!res.writableFinished) gone.abort();
      };
      res.once('close', onClose);
      const started = await startDump(cmd, gone.signal);
      res.off('close', onClose);
      const log = ctx.state.log ?? deps.logger;
      if (!started.ok) {
        if (gone.signal.aborted) {
          log.info({ endpoint: ep.id }, 'dump: the client went away before the first byte; pg_dump stopped');
          ctx.respond = false;
          return;
        }
        if (started.spawnError) throw new ApiError(500, 'dump_unavailable', `cannot run ${cmd.file}: ${started.spawnError.message}`);
        const failure = classifyDumpFailure(started.stderr, access.password);
        switch (failure.kind) {
          case 'database_not_found':
            throw new ApiError(404, 'not_found', `database ${JSON.stringify(query.database)} not found on endpoint ${ep.id}`, what);
          case 'table_not_found':
            throw new ApiError(404, 'not_found', `table ${JSON.stringify(query.table)} not found in database ${JSON.stringify(query.database)}`, what);
          case 'unreachable':
            throw new ApiError(502, 'compute_unavailable', `pg_dump could not reach the compute of endpoint ${ep.id}: ${failure.message}`, what);
          default:
            throw new ApiError(502, 'dump_failed', failure.message, what);
        }
      }

      await touchEndpoint(deps.db, ep.id).catch(() => undefined);
      ctx.status = 200;
      ctx.set('Content-Type', 'application/sql');
      ctx.set('Content-Disposition', dumpContentDisposition({ endpointId: ep.id, database: query.database, table, at: new Date() }));
      ctx.set('Cache-Control', 'no-store');
      ctx.set('X-Content-Type-Options', 'nosniff');
      // The response is written here, not by Koa: only this code knows whether the dump completed.
      ctx.respond = false;
      if (ctx.method === 'HEAD') {
        started.dump.kill();
        res.end();
        return;
      }
      const end = await started.dump.pipeTo(res);
      if (end.outcome === 'failed') {
        log.warn({ endpoint: ep.id, code: end.code, signal: end.signal, error: dumpErrorMessage(end.stderr, access.password) }, 'dump failed midway; connection dropped');
      } else if (end.outcome === 'client_gone') {
        log.info({ endpoint: ep.id }, 'dump: the client went away; pg_dump stopped');
      }
      await touchEndpoint(deps.db, ep.id).catch(() => undefined);
    },
  });
}
