import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';
import type { Role } from '../domain/rbac';
import type { ReplicationStatus } from '../engine/replication';

export type { ReplicationStatus };

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export type ProjectStatus = 'provisioning' | 'ready' | 'deleting' | 'failed';
export type EndpointStatus = 'provisioning' | 'running' | 'suspended' | 'deleting';
export type BranchStatus = 'provisioning' | 'ready' | 'resetting' | 'deleting';
export type OperationStatus = 'running' | 'succeeded' | 'failed';

export interface OrganizationsTable {
  id: string;
  name: string;
  plan: ColumnType<string, string | undefined, string>;
  created_at: Timestamp;
}

export interface ApiKeysTable {
  id: string;
  org_id: string;
  name: string;
  role: Role;
  key_hash: string;
  prefix: string;
  created_at: Timestamp;
  expires_at: Timestamp;
  revoked_at: Timestamp | null;
  last_used_at: Timestamp | null;
  /** The member the key acts for (it acts as the lower of both roles); null for a key of no one. */
  member_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** The projects a project-scoped key sees; null for a key of the whole organization. */
  project_ids: ColumnType<string[] | null, string[] | null | undefined, string[] | null>;
}

export interface MembersTable {
  id: string;
  org_id: string;
  email: string;
  role: Role;
  created_at: Timestamp;
  removed_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

export interface InvitationsTable {
  id: string;
  org_id: string;
  email: string;
  role: Role;
  /** SHA-256 of the one-time token; the token itself is shown once, to the inviter. */
  token_hash: string;
  invited_by: string | null;
  created_at: Timestamp;
  expires_at: Timestamp;
  accepted_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  cancelled_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  member_id: ColumnType<string | null, string | null | undefined, string | null>;
}

export type AuditOutcome = 'succeeded' | 'accepted' | 'refused' | 'failed' | 'started';

/** Append-only (the database refuses UPDATE, DELETE and TRUNCATE). */
export interface AuditLogTable {
  id: Generated<string>;
  org_id: string;
  /** The member's e-mail, `key:<name>` for a key of no member, `platform` for schedules. */
  actor: string;
  actor_member_id: string | null;
  actor_key_id: string | null;
  action: string;
  target: string | null;
  outcome: AuditOutcome;
  status: number | null;
  request_id: string | null;
  details: ColumnType<unknown, string | null | undefined, never>;
  created_at: Generated<Date>;
}

export interface IdempotencyKeysTable {
  org_id: string;
  key: string;
  method: string;
  path: string;
  body_hash: string;
  /** null while the first request is still running. */
  status: number | null;
  response: ColumnType<unknown, string | null | undefined, string | null>;
  headers: ColumnType<Record<string, string> | null, string | null | undefined, string | null>;
  created_at: Timestamp;
}

export interface WebhooksTable {
  id: string;
  org_id: string;
  url: string;
  events: ColumnType<string[], string, string>;
  enabled: ColumnType<boolean, boolean | undefined, boolean>;
  /** AES-GCM sealed signing secret (whsec_…). */
  secret_enc: string;
  created_at: Timestamp;
  deleted_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

export type DeliveryStatus = 'pending' | 'delivered' | 'failed' | 'cancelled';

export interface WebhookDeliveriesTable {
  id: string;
  webhook_id: string;
  org_id: string;
  event_id: string;
  event_type: string;
  payload: ColumnType<unknown, string, never>;
  status: ColumnType<DeliveryStatus, DeliveryStatus | undefined, DeliveryStatus>;
  attempts: ColumnType<number, number | undefined, number>;
  last_status: number | null;
  last_error: string | null;
  /** When its delivery workflow was started; null rows are started by the dispatcher. */
  started_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  created_at: Timestamp;
  delivered_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
}

export interface WebhookAttemptsTable {
  delivery_id: string;
  attempt: number;
  status: number | null;
  error: string | null;
  duration_ms: number;
  at: Timestamp;
}

export interface ProjectsTable {
  id: string;
  org_id: string;
  name: string;
  region: string;
  /** The Postgres major of every branch of the project (a branch keeps its parent's). */
  pg_version: ColumnType<number, number | undefined, never>;
  status: ProjectStatus;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface BranchesTable {
  id: string;
  project_id: string;
  name: string;
  is_primary: boolean;
  parent_id: string | null;
  parent_lsn: string | null;
  /** Storage driver that created the data dir (btrfs | copy | initdb). */
  driver: string;
  host_id: string;
  status: ColumnType<BranchStatus, BranchStatus | undefined, BranchStatus>;
  protected: ColumnType<boolean, boolean | undefined, boolean>;
  ttl_hours: number | null;
  expires_at: Timestamp | null;
  /** For a branch made at a past point: commit time of the last transaction it holds. */
  parent_commit_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  /** For a branch made by an import: its source, redacted (postgresql://user@host:port/db). */
  import_source: ColumnType<string | null, string | null | undefined, string | null>;
  /** Dynamic masking, while enabled (see domain/masking.ts MaskingState); null when off. */
  anonymization: ColumnType<MaskingStateRow | null, string | null | undefined, string | null>;
  created_at: Timestamp;
}

/** What enabling masking set up on the branch's compute, to refresh and undo it. */
export interface MaskingStateRow {
  database: string;
  password_enc: string;
  known_columns: string[];
  revoked_schemas: string[];
  revoked_databases: string[];
  enabled_at: string;
}

export interface AnonymizationRulesTable {
  id: string;
  branch_id: string;
  schema_name: string;
  table_name: string;
  column_name: string;
  masking_function: string;
  created_at: Timestamp;
}

/**
 * The data a branch has written since its data dir was made (created, forked, reset, restored).
 * Each history has its own WAL archive and bases on the host; an ended one stays restorable.
 */
export interface BranchHistoriesTable {
  branch_id: string;
  history_id: string;
  start_lsn: string | null;
  started_at: Timestamp;
  ended_at: Timestamp | null;
}

/** A base backup on its host: a restore replays the history's WAL from it to a target at or past end_lsn. */
export interface BaseBackupsTable {
  id: string;
  branch_id: string;
  history_id: string;
  host_id: string;
  driver: string;
  start_lsn: string;
  end_lsn: string;
  timeline: number;
  taken_at: Timestamp;
  /** The earlier base an incremental one holds the changes since; null for a full base. */
  parent_base_id: ColumnType<string | null, string | null | undefined, string | null>;
}

export type BackupKind = 'named' | 'scheduled';

/** What users see as backups: a restore point (an LSN of a history), named by them or by the schedule. */
export interface BackupsTable {
  id: string;
  project_id: string;
  branch_id: string;
  history_id: string;
  name: string;
  kind: BackupKind;
  lsn: string;
  timeline: number;
  base_id: string | null;
  created_at: Timestamp;
}

export interface EndpointsTable {
  id: string;
  project_id: string;
  branch_id: string;
  host_id: string;
  port: number | null;
  status: EndpointStatus;
  /** AES-GCM sealed password of cloud_admin (see domain/secrets). */
  pg_password_enc: string;
  compute_cu: ColumnType<number, number | undefined, number>;
  auto_suspend_seconds: ColumnType<number, number | undefined, number>;
  min_cu: number | null;
  max_cu: number | null;
  /** Normalized IPs and CIDRs; empty allows every client. */
  allowlist: ColumnType<string[], string | undefined, string>;
  limits_enforced: ColumnType<boolean, boolean | undefined, boolean>;
  last_active_at: Timestamp;
  /** Last CPU sample of the compute's cgroup, for autoscaling. */
  cpu_seconds: number | null;
  cpu_sampled_at: Timestamp | null;
  /** pg_stat_archiver as last read by the backup Schedule (see engine/walArchive). */
  wal_archive: ColumnType<ArchiverStats | null, string | null | undefined, string | null>;
  /** primary: the branch's read-write compute (one per branch); replica: a hot standby of it. */
  role: ColumnType<EndpointRole, EndpointRole | undefined, EndpointRole>;
  /** A replica's replay position and lag as last measured (see engine/replication). */
  replication: ColumnType<ReplicationStatus | null, string | null | undefined, string | null>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export type EndpointRole = 'primary' | 'replica';

export interface ArchiverStats {
  archived_count: number;
  last_archived_wal: string | null;
  last_archived_at: string | null;
  failed_count: number;
  last_failed_wal: string | null;
  last_failed_at: string | null;
  checked_at: string;
}

export interface SeedsTable {
  id: string;
  project_id: string;
  name: string;
  sql: string;
  position: number;
  enabled: ColumnType<boolean, boolean | undefined, boolean>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export type ComputeEvent = 'start' | 'suspend' | 'resume' | 'resize' | 'stop' | 'restart';

export interface ComputeEventsTable {
  id: Generated<string>;
  project_id: string;
  endpoint_id: string;
  event: ComputeEvent;
  at: Timestamp;
  /** For suspend: how long the compute had been running. */
  duration_s: number | null;
  detail: ColumnType<unknown, string | null | undefined, string | null>;
  /** The compute's size when the event happened (null for events before 0009). */
  compute_cu: number | null;
}

export interface OperationsTable {
  id: string;
  org_id: string;
  project_id: string;
  kind: string;
  workflow_id: string;
  run_id: ColumnType<string | null, string | null | undefined, string | null>;
  status: OperationStatus;
  step: string | null;
  error: ColumnType<unknown, string | null | undefined, string | null>;
  result: ColumnType<unknown, string | null | undefined, string | null>;
  /** What the operation is about, readable by its users (see OperationDef.detail); never a secret. */
  detail: ColumnType<unknown, string | null | undefined, string | null>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface Database {
  organizations: OrganizationsTable;
  api_keys: ApiKeysTable;
  projects: ProjectsTable;
  branch_histories: BranchHistoriesTable;
  base_backups: BaseBackupsTable;
  backups: BackupsTable;
  branches: BranchesTable;
  endpoints: EndpointsTable;
  operations: OperationsTable;
  seeds: SeedsTable;
  compute_events: ComputeEventsTable;
  metrics_snapshots: MetricsSnapshotsTable;
  usage_transfer: UsageTransferTable;
  anonymization_rules: AnonymizationRulesTable;
  members: MembersTable;
  invitations: InvitationsTable;
  audit_log: AuditLogTable;
  idempotency_keys: IdempotencyKeysTable;
  webhooks: WebhooksTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_attempts: WebhookAttemptsTable;
}

export interface MetricsSnapshotsTable {
  id: Generated<string>;
  project_id: string;
  endpoint_id: string;
  snapshot_at: Generated<Date>;
  connections_total: number | null;
  cache_hit_ratio: number | null;
  storage_logical_bytes: ColumnType<string | null, number | null, number | null>;
  data_dir_bytes: ColumnType<string | null, number | null, number | null>;
  cpu_seconds: number | null;
  memory_bytes: ColumnType<string | null, number | null, number | null>;
}

export interface UsageTransferTable {
  endpoint_id: string;
  project_id: string;
  /** YYYY-MM (UTC). */
  period: string;
  bytes: ColumnType<string, number | undefined, number>;
}

export type ApiKeyRow = Selectable<ApiKeysTable>;
export type MemberRow = Selectable<MembersTable>;
export type InvitationRow = Selectable<InvitationsTable>;
export type WebhookRow = Selectable<WebhooksTable>;
export type DeliveryRow = Selectable<WebhookDeliveriesTable>;
export type ProjectRow = Selectable<ProjectsTable>;
export type BranchRow = Selectable<BranchesTable>;
export type EndpointRow = Selectable<EndpointsTable>;
export type OperationRow = Selectable<OperationsTable>;
export type SeedRow = Selectable<SeedsTable>;
export type NewProject = Insertable<ProjectsTable>;
export type ProjectUpdate = Updateable<ProjectsTable>;
export type { Generated };
