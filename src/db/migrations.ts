import { Kysely, Migration, MigrationProvider, Migrator, sql } from 'kysely';

/** Migrations live in code so the built image needs no file layout; never edit one that has shipped. */
const migrations: Record<string, Migration> = {
  '0001_foundation': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('organizations')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'text', (c) => c.notNull().references('organizations.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('key_hash', 'text', (c) => c.notNull().unique())
        .addColumn('prefix', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
        .addColumn('revoked_at', 'timestamptz')
        .addColumn('last_used_at', 'timestamptz')
        .execute();
      await db.schema
        .createTable('projects')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'text', (c) => c.notNull().references('organizations.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('region', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      await db.schema.createIndex('projects_org_idx').on('projects').columns(['org_id', 'created_at']).execute();
      await db.schema
        .createTable('branches')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('project_id', 'text', (c) => c.notNull().references('projects.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('is_primary', 'boolean', (c) => c.notNull().defaultTo(false))
        .addColumn('parent_id', 'text', (c) => c.references('branches.id'))
        .addColumn('parent_lsn', 'text')
        .addColumn('driver', 'text', (c) => c.notNull())
        .addColumn('host_id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addUniqueConstraint('branches_project_name_uq', ['project_id', 'name'])
        .execute();
      await db.schema
        .createTable('endpoints')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('project_id', 'text', (c) => c.notNull().references('projects.id').onDelete('cascade'))
        .addColumn('branch_id', 'text', (c) => c.notNull().references('branches.id').onDelete('cascade'))
        .addColumn('host_id', 'text', (c) => c.notNull())
        .addColumn('port', 'integer')
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('pg_password_enc', 'text', (c) => c.notNull())
        .addColumn('compute_cu', 'real', (c) => c.notNull().defaultTo(0.25))
        .addColumn('auto_suspend_seconds', 'integer', (c) => c.notNull().defaultTo(300))
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addUniqueConstraint('endpoints_host_port_uq', ['host_id', 'port'])
        .execute();
      await db.schema
        .createTable('operations')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'text', (c) => c.notNull())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('workflow_id', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('step', 'text')
        .addColumn('error', 'jsonb')
        .addColumn('result', 'jsonb')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      await db.schema.createIndex('operations_project_idx').on('operations').columns(['project_id', 'created_at']).execute();
    },
  },
  '0002_branches_seeds_endpoints': {
    async up(db: Kysely<any>) {
      await db.schema
        .alterTable('branches')
        .addColumn('status', 'text', (c) => c.notNull().defaultTo('ready'))
        .addColumn('protected', 'boolean', (c) => c.notNull().defaultTo(false))
        .addColumn('ttl_hours', 'integer')
        .addColumn('expires_at', 'timestamptz')
        .execute();
      await db.schema.createIndex('branches_expiry_idx').on('branches').column('expires_at').where(sql.ref('expires_at'), 'is not', null).execute();
      await db.schema
        .alterTable('endpoints')
        .addColumn('min_cu', 'real')
        .addColumn('max_cu', 'real')
        .addColumn('allowlist', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
        .addColumn('limits_enforced', 'boolean', (c) => c.notNull().defaultTo(false))
        .addColumn('last_active_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('cpu_seconds', 'double precision')
        .addColumn('cpu_sampled_at', 'timestamptz')
        .execute();
      await db.schema
        .createTable('seeds')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('project_id', 'text', (c) => c.notNull().references('projects.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('sql', 'text', (c) => c.notNull())
        .addColumn('position', 'integer', (c) => c.notNull())
        .addColumn('enabled', 'boolean', (c) => c.notNull().defaultTo(true))
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      // Deferred, so a reorder can swap positions inside one transaction.
      await sql`ALTER TABLE seeds ADD CONSTRAINT seeds_project_position_uq UNIQUE (project_id, position) DEFERRABLE INITIALLY DEFERRED`.execute(db);
      await db.schema
        .createTable('compute_events')
        .addColumn('id', 'bigserial', (c) => c.primaryKey())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('endpoint_id', 'text', (c) => c.notNull())
        .addColumn('event', 'text', (c) => c.notNull())
        .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('duration_s', 'double precision')
        .addColumn('detail', 'jsonb')
        .execute();
      await db.schema.createIndex('compute_events_project_idx').on('compute_events').columns(['project_id', 'at']).execute();
    },
  },
  '0003_operation_runs': {
    async up(db) {
      // The run an operation belongs to: progress and final state come from that run, not from
      // whichever run now holds the shared workflow id.
      await db.schema.alterTable('operations').addColumn('run_id', 'text').execute();
      await db.schema.createIndex('operations_running_idx').on('operations').columns(['status', 'updated_at']).execute();
    },
  },
  '0004_pg_version': {
    async up(db) {
      // Every project before this migration runs Postgres 15.
      await db.schema.alterTable('projects').addColumn('pg_version', 'integer', (c) => c.notNull().defaultTo(15)).execute();
    },
  },
  '0005_backups': {
    async up(db) {
      await db.schema.alterTable('branches').addColumn('parent_commit_at', 'timestamptz').execute();
      await db.schema.alterTable('endpoints').addColumn('wal_archive', 'jsonb').execute();
      await db.schema
        .createTable('branch_histories')
        .addColumn('branch_id', 'text', (c) => c.notNull().references('branches.id').onDelete('cascade'))
        .addColumn('history_id', 'text', (c) => c.notNull())
        .addColumn('start_lsn', 'text')
        .addColumn('started_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('ended_at', 'timestamptz')
        .addPrimaryKeyConstraint('branch_histories_pk', ['branch_id', 'history_id'])
        .execute();
      await db.schema
        .createTable('base_backups')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('branch_id', 'text', (c) => c.notNull().references('branches.id').onDelete('cascade'))
        .addColumn('history_id', 'text', (c) => c.notNull())
        .addColumn('host_id', 'text', (c) => c.notNull())
        .addColumn('driver', 'text', (c) => c.notNull())
        .addColumn('start_lsn', 'text', (c) => c.notNull())
        .addColumn('end_lsn', 'text', (c) => c.notNull())
        .addColumn('timeline', 'integer', (c) => c.notNull())
        .addColumn('taken_at', 'timestamptz', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('base_backups_branch_idx').on('base_backups').columns(['branch_id', 'history_id', 'taken_at']).execute();
      await db.schema
        .createTable('backups')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('project_id', 'text', (c) => c.notNull().references('projects.id').onDelete('cascade'))
        .addColumn('branch_id', 'text', (c) => c.notNull().references('branches.id').onDelete('cascade'))
        .addColumn('history_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('lsn', 'text', (c) => c.notNull())
        .addColumn('timeline', 'integer', (c) => c.notNull())
        .addColumn('base_id', 'text', (c) => c.references('base_backups.id').onDelete('set null'))
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      await db.schema.createIndex('backups_project_idx').on('backups').columns(['project_id', 'created_at']).execute();
    },
  },
  '0006_imports': {
    async up(db) {
      // Where an imported branch came from, redacted (no password): postgresql://user@host:port/db.
      await db.schema.alterTable('branches').addColumn('import_source', 'text').execute();
      // What an operation is about, as its user may read it (never a secret): an import's branch
      // name, compute and redacted source, readable before its branch row exists and after it is gone.
      await db.schema.alterTable('operations').addColumn('detail', 'jsonb').execute();
    },
  },
  '0007_replicas': {
    async up(db) {
      // A read replica is an endpoint of its branch with role 'replica': a hot standby of the
      // branch's primary endpoint, with its own data dir, port and size.
      await db.schema.alterTable('endpoints').addColumn('role', 'text', (c) => c.notNull().defaultTo('primary')).execute();
      await db.schema.alterTable('endpoints').addColumn('replication', 'jsonb').execute();
      await db.schema.createIndex('endpoints_branch_role_idx').on('endpoints').columns(['branch_id', 'role']).execute();
    },
  },
  '0008_plans': {
    async up(db) {
      // The organization's plan (domain/plans.ts): its limits and prices. New organizations are
      // on free; the deployment's own (org-default) takes LAMPION_DEFAULT_ORG_PLAN at every start.
      await db.schema.alterTable('organizations').addColumn('plan', 'text', (c) => c.notNull().defaultTo('free')).execute();
    },
  },
  '0009_metrics_usage': {
    async up(db) {
      // A row per running endpoint per metrics Schedule tick, pruned after 24 h.
      await db.schema
        .createTable('metrics_snapshots')
        .addColumn('id', 'bigserial', (c) => c.primaryKey())
        .addColumn('project_id', 'text', (c) => c.notNull().references('projects.id').onDelete('cascade'))
        .addColumn('endpoint_id', 'text', (c) => c.notNull())
        .addColumn('snapshot_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('connections_total', 'integer')
        .addColumn('cache_hit_ratio', 'float8')
        .addColumn('storage_logical_bytes', 'bigint')
        .addColumn('data_dir_bytes', 'bigint')
        .addColumn('cpu_seconds', 'float8')
        .addColumn('memory_bytes', 'bigint')
        .execute();
      await db.schema.createIndex('metrics_snapshots_project_at_idx').on('metrics_snapshots').columns(['project_id', 'snapshot_at']).execute();
      // Bytes the proxy relayed per endpoint and month (both directions), for usage.
      await db.schema
        .createTable('usage_transfer')
        .addColumn('endpoint_id', 'text', (c) => c.notNull())
        .addColumn('project_id', 'text', (c) => c.notNull().references('projects.id').onDelete('cascade'))
        .addColumn('period', 'text', (c) => c.notNull())
        .addColumn('bytes', 'bigint', (c) => c.notNull().defaultTo(0))
        .addPrimaryKeyConstraint('usage_transfer_pk', ['endpoint_id', 'period'])
        .execute();
      // The compute's size at each event, so compute hours can be weighted by CU.
      await db.schema.alterTable('compute_events').addColumn('compute_cu', 'float8').execute();
    },
  },
  '0010_incremental_bases': {
    async up(db) {
      // An incremental base (Postgres 17+, copy driver) is restorable only with the bases it builds on.
      await db.schema.alterTable('base_backups').addColumn('parent_base_id', 'text', (c) => c.references('base_backups.id')).execute();
    },
  },
  '0011_anonymization': {
    async up(db) {
      // Masking rules of a branch, and (on the branch) the state masking was enabled with.
      await db.schema
        .createTable('anonymization_rules')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('branch_id', 'text', (c) => c.notNull().references('branches.id').onDelete('cascade'))
        .addColumn('schema_name', 'text', (c) => c.notNull())
        .addColumn('table_name', 'text', (c) => c.notNull())
        .addColumn('column_name', 'text', (c) => c.notNull())
        .addColumn('masking_function', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addUniqueConstraint('anonymization_rules_column_uq', ['branch_id', 'schema_name', 'table_name', 'column_name'])
        .execute();
      await db.schema.alterTable('branches').addColumn('anonymization', 'jsonb').execute();
    },
  },
  '0012_organizations': {
    async up(db) {
      // People of an organization; a key belongs to one, and acts as the lower of its own role
      // and its member's. A removed member stays (removed_at) so its keys and audit rows keep a name.
      await db.schema
        .createTable('members')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'text', (c) => c.notNull().references('organizations.id').onDelete('cascade'))
        .addColumn('email', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('removed_at', 'timestamptz')
        .execute();
      await sql`CREATE UNIQUE INDEX members_org_email_uq ON members (org_id, lower(email)) WHERE removed_at IS NULL`.execute(db);
      await db.schema.alterTable('api_keys').addColumn('member_id', 'text', (c) => c.references('members.id')).execute();
      await db.schema.createIndex('api_keys_member_idx').on('api_keys').column('member_id').execute();
      await db.schema
        .createTable('invitations')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'text', (c) => c.notNull().references('organizations.id').onDelete('cascade'))
        .addColumn('email', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('invited_by', 'text', (c) => c.references('members.id'))
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
        .addColumn('accepted_at', 'timestamptz')
        .addColumn('cancelled_at', 'timestamptz')
        .addColumn('member_id', 'text', (c) => c.references('members.id'))
        .execute();
      // Append-only, enforced by the database: the catalog role gives up UPDATE, DELETE and
      // TRUNCATE on its own table, and a trigger refuses them for anyone the grants miss.
      await db.schema
        .createTable('audit_log')
        .addColumn('id', 'bigserial', (c) => c.primaryKey())
        .addColumn('org_id', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('actor_member_id', 'text')
        .addColumn('actor_key_id', 'text')
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target', 'text')
        .addColumn('outcome', 'text', (c) => c.notNull())
        .addColumn('status', 'integer')
        .addColumn('request_id', 'text')
        .addColumn('details', 'jsonb')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`clock_timestamp()`))
        .execute();
      await db.schema.createIndex('audit_log_org_idx').on('audit_log').columns(['org_id', 'id']).execute();
      await sql`CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = '42501'; END $$`.execute(db);
      await sql`CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()`.execute(db);
      await sql`CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()`.execute(db);
      await sql`REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM CURRENT_USER`.execute(db);
      // A retried POST with the same Idempotency-Key answers what the first one did.
      await db.schema
        .createTable('idempotency_keys')
        .addColumn('org_id', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('method', 'text', (c) => c.notNull())
        .addColumn('path', 'text', (c) => c.notNull())
        .addColumn('body_hash', 'text', (c) => c.notNull())
        .addColumn('status', 'integer')
        .addColumn('response', 'jsonb')
        .addColumn('headers', 'jsonb')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addPrimaryKeyConstraint('idempotency_keys_pk', ['org_id', 'key'])
        .execute();
      // rate-limiter-flexible's own table (RateLimiterPostgres), so every API instance counts together.
      await sql`CREATE TABLE rate_limits (key varchar(255) PRIMARY KEY, points integer NOT NULL DEFAULT 0, expire bigint)`.execute(db);
      await db.schema
        .createTable('webhooks')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'text', (c) => c.notNull().references('organizations.id').onDelete('cascade'))
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('events', 'jsonb', (c) => c.notNull())
        .addColumn('enabled', 'boolean', (c) => c.notNull().defaultTo(true))
        .addColumn('secret_enc', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('deleted_at', 'timestamptz')
        .execute();
      // The outbox: a delivery row is written in the same transaction as the change it reports,
      // and its workflow is started after (again by the dispatcher sweep if that start was lost).
      await db.schema
        .createTable('webhook_deliveries')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('webhook_id', 'text', (c) => c.notNull().references('webhooks.id').onDelete('cascade'))
        .addColumn('org_id', 'text', (c) => c.notNull())
        .addColumn('event_id', 'text', (c) => c.notNull())
        .addColumn('event_type', 'text', (c) => c.notNull())
        .addColumn('payload', 'jsonb', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull().defaultTo('pending'))
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('last_status', 'integer')
        .addColumn('last_error', 'text')
        .addColumn('started_at', 'timestamptz')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('delivered_at', 'timestamptz')
        .execute();
      await db.schema.createIndex('webhook_deliveries_hook_idx').on('webhook_deliveries').columns(['webhook_id', 'created_at']).execute();
      await sql`CREATE INDEX webhook_deliveries_unstarted_idx ON webhook_deliveries (created_at) WHERE started_at IS NULL`.execute(db);
      await db.schema
        .createTable('webhook_attempts')
        .addColumn('delivery_id', 'text', (c) => c.notNull().references('webhook_deliveries.id').onDelete('cascade'))
        .addColumn('attempt', 'integer', (c) => c.notNull())
        .addColumn('status', 'integer')
        .addColumn('error', 'text')
        .addColumn('duration_ms', 'integer')
        .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addPrimaryKeyConstraint('webhook_attempts_pk', ['delivery_id', 'attempt'])
        .execute();
    },
  },
  '0013_project_scoped_keys': {
    async up(db) {
      // A key may see only the projects it names (null: the whole organization).
      await db.schema.alterTable('api_keys').addColumn('project_ids', sql`text[]`).execute();
    },
  },
};

const provider: MigrationProvider = { getMigrations: async () => migrations };

export async function migrateToLatest(db: Kysely<any>): Promise<void> {
  const migrator = new Migrator({ db, provider, migrationTableName: 'lampion_migrations', migrationLockTableName: 'lampion_migrations_lock' });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    throw new Error(`catalog migration ${failed?.migrationName ?? ''} failed: ${String(error)}`);
  }
}
