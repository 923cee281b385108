import { quoteIdent } from './identifiers';
import type { Statement } from './statement';

/** Databases users work in: not the templates. Sizes need CONNECT or pg_read_all_stats (cloud_admin has pg_monitor). */
export function listDatabasesSql(): Statement {
  return {
    text: `SELECT d.datname AS name, pg_encoding_to_char(d.encoding) AS encoding, pg_database_size(d.oid)::bigint AS size_bytes, pg_get_userbyid(d.datdba) AS owner
           FROM pg_database d WHERE NOT d.datistemplate ORDER BY d.datname`,
  };
}

export function createDatabaseSql(name: string): Statement {
  return { text: `CREATE DATABASE ${quoteIdent(name)}` };
}

export function dropDatabaseSql(name: string): Statement {
  return { text: `DROP DATABASE ${quoteIdent(name)}` };
}

/** The database the platform and every client starts in: never dropped through the API. */
export const DEFAULT_DATABASE = 'postgres';
