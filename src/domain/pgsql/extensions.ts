import { quoteIdent } from './identifiers';
import type { Statement } from './statement';

/**
 * Extensions. Trusted ones (per their control file) are created by cloud_admin itself; the
 * platform creates a few others on the user's behalf as its superuser. Nothing that reaches the
 * host's files or network (file_fdw, dblink, postgres_fdw, adminpack) or its raw storage
 * (pageinspect, pg_surgery, pg_walinspect) is among them.
 */
export const PLATFORM_EXTENSIONS = ['vector', 'pg_stat_statements', 'pg_buffercache', 'pgstattuple', 'pg_prewarm', 'amcheck', 'bloom', 'earthdistance', 'autoinc', 'moddatetime', 'insert_username', 'refint', 'intagg', 'dict_xsyn', 'pgrowlocks', 'pg_visibility', 'postgis'];

/** What the server has: every available extension, its default and installed version, and who may create it. */
export function listExtensionsSql(): Statement {
  return {
    text: `SELECT a.name, a.default_version, a.installed_version, a.comment,
                  coalesce((SELECT bool_or(v.trusted) FROM pg_available_extension_versions v WHERE v.name = a.name AND v.version = a.default_version), false) AS trusted
           FROM pg_available_extensions a ORDER BY a.name`,
  };
}

export function createExtensionSql(name: string): Statement {
  return { text: `CREATE EXTENSION IF NOT EXISTS ${quoteIdent(name)}` };
}

export function dropExtensionSql(name: string): Statement {
  return { text: `DROP EXTENSION ${quoteIdent(name)}` };
}
