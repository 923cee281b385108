/**
 * The one table from a Postgres SQLSTATE to an API answer: every route that runs SQL on a
 * compute answers a database error with this status and code. Exact codes first, then the
 * code's class (its first two characters), then the default.
 */
export interface SqlErrorAnswer {
  status: number;
  code: string;
}

const EXACT: Record<string, SqlErrorAnswer> = {
  '42601': { status: 422, code: 'syntax_error' },
  '42P01': { status: 404, code: 'undefined_table' },
  '42704': { status: 404, code: 'undefined_object' },
  '42703': { status: 404, code: 'undefined_column' },
  '42883': { status: 404, code: 'undefined_function' },
  '3D000': { status: 404, code: 'undefined_database' },
  '3F000': { status: 404, code: 'undefined_schema' },
  '42710': { status: 409, code: 'duplicate_object' },
  '42P07': { status: 409, code: 'duplicate_table' },
  '42P04': { status: 409, code: 'duplicate_database' },
  '42701': { status: 409, code: 'duplicate_column' },
  '42P06': { status: 409, code: 'duplicate_schema' },
  '42723': { status: 409, code: 'duplicate_function' },
  '2BP01': { status: 409, code: 'dependent_objects_still_exist' },
  '55006': { status: 409, code: 'object_in_use' },
  '55P03': { status: 409, code: 'lock_not_available' },
  '40001': { status: 409, code: 'serialization_failure' },
  '40P01': { status: 409, code: 'deadlock_detected' },
  '42501': { status: 403, code: 'insufficient_privilege' },
  '57014': { status: 408, code: 'statement_timeout' },
  '57P01': { status: 503, code: 'compute_restarting' },
  '57P02': { status: 503, code: 'compute_restarting' },
  '57P03': { status: 503, code: 'compute_restarting' },
};

const BY_CLASS: Record<string, SqlErrorAnswer> = {
  '08': { status: 503, code: 'connection_failure' },
  '0A': { status: 422, code: 'feature_not_supported' },
  '21': { status: 422, code: 'cardinality_violation' },
  '22': { status: 422, code: 'data_exception' },
  '23': { status: 409, code: 'integrity_constraint_violation' },
  '25': { status: 409, code: 'invalid_transaction_state' },
  '28': { status: 403, code: 'invalid_authorization' },
  '42': { status: 422, code: 'invalid_sql' },
  '44': { status: 422, code: 'check_option_violation' },
  '53': { status: 503, code: 'insufficient_resources' },
  '54': { status: 422, code: 'program_limit_exceeded' },
  '55': { status: 409, code: 'object_not_in_prerequisite_state' },
  '57': { status: 503, code: 'operator_intervention' },
  '58': { status: 502, code: 'system_error' },
  P0: { status: 422, code: 'plpgsql_error' },
  XX: { status: 502, code: 'internal_error' },
};

const DEFAULT: SqlErrorAnswer = { status: 422, code: 'sql_error' };

export function sqlErrorAnswer(sqlstate: string | undefined): SqlErrorAnswer {
  if (!sqlstate || !/^[0-9A-Z]{5}$/.test(sqlstate)) return DEFAULT;
  return EXACT[sqlstate] ?? BY_CLASS[sqlstate.slice(0, 2)] ?? DEFAULT;
}

/** Codes after which the same request may simply be sent again once the compute is back. */
export function isComputeGone(sqlstate: string | undefined): boolean {
  return sqlstate === '57P01' || sqlstate === '57P02' || sqlstate === '57P03';
}
