import path from 'node:path';

import { z } from 'zod';
import type { HostTimeouts } from './domain/timeouts';
import { parseBinDirs, PgBinDir } from './domain/pgVersions';
import { PLAN_NAMES, PLANS, PlanName } from './domain/plans';
import type { RegionInfo } from './domain/residency';

// 0 = an ephemeral port (tests); the start command always passes real ones.
const port = z.coerce.number().int().min(0).max(65535);
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));

/** Every environment variable Lampion reads. The README's configuration table mirrors this. */
export const envSchema = z.object({
  LAMPION_DATA_DIR: z.string().default('./.lampion'),
  LAMPION_API_PORT: port.default(4100),
  LAMPION_PROXY_PORT: port.default(4432),
  LAMPION_PUBLIC_HOST: z.string().min(1).default('127.0.0.1'),
  LAMPION_LISTEN_HOST: z.string().min(1).default('127.0.0.1'),
  LAMPION_TEMPORAL_PORT: port.default(7934),
  LAMPION_TEMPORAL_UI_PORT: port.default(8934),
  LAMPION_CONTROL_DB_PORT: port.default(5934),
  LAMPION_COMPUTE_PORT_MIN: port.default(56000),
  LAMPION_COMPUTE_PORT_MAX: port.default(56999),
  LAMPION_BOOTSTRAP_API_KEY: optionalString.pipe(
    z
      .string()
      .regex(/^lmp_live_[A-Za-z0-9]{32}$/, 'must look like lmp_live_ followed by 32 letters or digits')
      .optional(),
  ),
  LAMPION_TEMPORAL_NAMESPACE: z.string().min(1).default('lampion'),
  LAMPION_TEMPORAL_BIN: optionalString,
  LAMPION_PG_BINDIRS: z
    .string()
    .default('15=/usr/lib/postgresql/15/bin')
    .transform((s, ctx) => {
      try {
        return parseBinDirs(s);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: `${(err as Error).message} (expected e.g. 15=/usr/lib/postgresql/15/bin,18=/opt/pg18/bin)` });
        return z.NEVER;
      }
    }),
  LAMPION_PG_OS_USER: optionalString,
  LAMPION_HOST_ID: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,30}$/)
    .default('local'),
  LAMPION_TASK_QUEUE: z.string().min(1).default('lampion-control'),
  LAMPION_STORAGE_DRIVER: z.enum(['auto', 'btrfs', 'copy']).default('auto'),
  // `true` under `npm start` (src/cli/start.ts); stacks embedded in tests and benches leave it off.
  LAMPION_AUTO_BTRFS: z
    .enum(['true', 'false', '1', '0'])
    .default('false')
    .transform((v) => v === 'true' || v === '1'),
  LAMPION_BTRFS_IMAGE_SIZE: z
    .string()
    .regex(/^[1-9][0-9]*[KMGT]?$/, 'must be a size such as 16G or 512M')
    .default('16G'),
  LAMPION_GUARD_DIR: optionalString,
  LAMPION_AUTO_SUSPEND_SWEEP_SECONDS: z.coerce.number().int().min(1).max(3600).default(15),
  LAMPION_TTL_SWEEP_SECONDS: z.coerce.number().int().min(1).max(86400).default(60),
  LAMPION_AUTOSCALE_SWEEP_SECONDS: z.coerce.number().int().min(5).max(3600).default(30),
  LAMPION_BACKUP_SWEEP_SECONDS: z.coerce.number().int().min(5).max(86_400).default(300),
  LAMPION_METRICS_SWEEP_SECONDS: z.coerce.number().int().min(1).max(3600).default(30),
  LAMPION_BACKUP_INTERVAL_HOURS: z.coerce.number().min(0).max(24 * 30).default(24),
  LAMPION_BACKUP_RETENTION_DAYS: z.coerce.number().min(0).max(3650).default(7),
  LAMPION_BACKUP_INCREMENTAL_CHAIN: z.coerce.number().int().min(0).max(30).default(6),
  LAMPION_REGIONS: z
    .string()
    .default('local')
    .transform((s) => s.split(',').map((r) => r.trim()).filter(Boolean)),
  LAMPION_REGION_CATALOG: z
    .string()
    .default('{}')
    .transform((s, ctx) => {
      try {
        return JSON.parse(s) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be JSON' });
        return z.NEVER;
      }
    })
    .pipe(
      z.record(
        z.string(),
        z
          .object({
            city: z.string().nullable().default(null),
            country: z.string().nullable().default(null),
            provider: z.string().nullable().default(null),
            datacenter: z.string().nullable().default(null),
            certifications: z.array(z.string()).default([]),
          })
          .strict(),
      ),
    ),
  LAMPION_PROXY_REQUIRE_TLS: z
    .enum(['true', 'false', '1', '0'])
    .default('true')
    .transform((v) => v === 'true' || v === '1'),
  LAMPION_TLS_CERT_FILE: optionalString,
  LAMPION_TLS_KEY_FILE: optionalString,
  LAMPION_API_WAIT_MS: z.coerce.number().int().min(0).max(600000).default(60000),
  LAMPION_DEFAULT_ORG_PLAN: z.enum(PLAN_NAMES).default('pro'),
  LAMPION_API_CACHE_MS: z.coerce.number().int().min(0).max(60_000).default(1000),
  LAMPION_SQL_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(30_000),
  LAMPION_SQL_MAX_TIMEOUT_MS: z.coerce.number().int().min(100).max(86_400_000).default(300_000),
  LAMPION_SQL_MAX_ROWS: z.coerce.number().int().min(1).max(1_000_000).default(10_000),
  LAMPION_SPARE_CLUSTERS: z.coerce.number().int().min(0).max(10).default(1),
  LAMPION_SQL_POOL_SIZE: z.coerce.number().int().min(1).max(100).default(4),
  LAMPION_API_KEY_TTL_DAYS: z.coerce.number().int().min(1).max(3650).default(90),
  /** One limit for every plan (tests, benches); unset, each plan has its own (LAMPION_RATE_LIMITS or the plan's). */
  LAMPION_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).optional(),
  LAMPION_RATE_LIMITS: z
    .string()
    .default('')
    .transform((s, ctx) => {
      const out: Partial<Record<PlanName, number>> = {};
      for (const part of s.split(',').map((p) => p.trim()).filter(Boolean)) {
        const m = /^(\w+)=(\d{1,9})$/.exec(part);
        if (!m || !(PLAN_NAMES as string[]).includes(m[1]) || Number(m[2]) < 1) {
          ctx.addIssue({ code: 'custom', message: `"${part}" is not plan=requests_per_minute (plans: ${PLAN_NAMES.join(', ')})` });
          continue;
        }
        out[m[1] as PlanName] = Number(m[2]);
      }
      return out;
    }),
  LAMPION_OWNER_EMAIL: z.string().email().default('owner@localhost'),
  LAMPION_INVITATION_TTL_HOURS: z.coerce.number().int().min(1).max(8760).default(168),
  LAMPION_WEBHOOK_ALLOW_PRIVATE: z
    .enum(['true', 'false', '1', '0'])
    .default('false')
    .transform((v) => v === 'true' || v === '1'),
  LAMPION_WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
  LAMPION_WEBHOOK_RETRY_INITIAL_SECONDS: z.coerce.number().min(0.1).max(3600).default(10),
  LAMPION_WEBHOOK_RETRY_MAX_SECONDS: z.coerce.number().min(0.1).max(86_400).default(3600),
  LAMPION_WEBHOOK_RETRY_HOURS: z.coerce.number().min(0.01).max(720).default(72),
  LAMPION_SECRET_KEY: optionalString.pipe(
    z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 hex characters (32 bytes)').optional(),
  ),
  LAMPION_FAULT_INJECTION: z
    .string()
    .default('')
    .transform((s) => s.split(',').map((r) => r.trim()).filter(Boolean)),
  LAMPION_HOST_HEARTBEAT_SECONDS: z.coerce.number().int().min(1).max(600).default(15),
  LAMPION_HOST_ACTIVITY_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(86_400).default(600),
  LAMPION_HOST_LONG_ACTIVITY_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(30 * 86_400).default(7 * 86_400),
  DATABASE_URL: optionalString,
  TEMPORAL_ADDRESS: optionalString,
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
});

export type Env = z.infer<typeof envSchema>;

export interface Config {
  dataDir: string;
  apiPort: number;
  proxyPort: number;
  publicHost: string;
  /** Address the API and the proxy bind to. */
  listenHost: string;
  temporalPort: number;
  temporalUiPort: number;
  controlDbPort: number;
  computePortMin: number;
  computePortMax: number;
  bootstrapApiKey?: string;
  temporalNamespace: string;
  temporalBin?: string;
  /** Postgres installs by major, ascending; the newest is what a project gets by default. */
  pgInstalls: PgBinDir[];
  /** OS user that owns compute data dirs and runs postgres; undefined = the current user. */
  pgOsUser?: string;
  hostId: string;
  controlTaskQueue: string;
  storageDriver?: 'btrfs' | 'copy';
  /** Clusters initdb'd ahead of need per major, taken by new projects and imports. */
  spareClusters: number;
  /** Mount a btrfs image at the branches dir when it is not on btrfs (src/stack/cowVolume.ts). */
  autoBtrfs: boolean;
  /** Apparent size of that image when it is created (sparse). */
  btrfsImageSize: string;
  /** Holds <major>/lampion_guard.so; default: dist/pg as scripts/build-guard.sh writes it. */
  guardDir?: string;
  regions: string[];
  /** Where each region is, as the operator states it (GET …/residency); regions without an entry are unknown. */
  regionCatalog: Record<string, RegionInfo>;
  /** Seconds between runs of each Temporal Schedule. */
  sweeps: { autoSuspend: number; ttl: number; autoscale: number; backup: number; metrics: number };
  /** A branch gets a new base when its latest is older than this; history is kept this long. */
  backups: { intervalHours: number; retentionDays: number; incrementalChainMax: number };
  proxyRequireTls: boolean;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  apiWaitMs: number;
  /** The plan of the deployment's own organization (org-default), set at every start. */
  defaultOrgPlan: PlanName;
  /** How long the API may use a looked-up API key or running endpoint again without the catalog (0: never). */
  apiCacheMs: number;
  /** The SQL executor: default and largest statement timeout, largest row cap, pool size per endpoint and database. */
  sql: { timeoutMs: number; maxTimeoutMs: number; maxRows: number; poolSize: number };
  apiKeyTtlDays: number;
  /** Requests per minute per API key, by plan. */
  rateLimits: Record<PlanName, number>;
  ownerEmail: string;
  invitationTtlHours: number;
  /** Webhook delivery: whether private/loopback targets are allowed, the request timeout, the retry schedule. */
  webhooks: { allowPrivate: boolean; timeoutMs: number; retryInitialSeconds: number; retryMaxSeconds: number; retryHours: number };
  secretKey?: string;
  /** Activity names that fail on purpose; for tests of compensation only. */
  faultInjection: string[];
  /** Heartbeat and start-to-close timeouts of host activities, handed to workflows in their memo. */
  hostTimeouts: HostTimeouts;
  databaseUrl?: string;
  temporalAddress?: string;
  logLevel: Env['LOG_LEVEL'];
}

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  if (e.LAMPION_COMPUTE_PORT_MIN > e.LAMPION_COMPUTE_PORT_MAX) {
    throw new ConfigError('invalid configuration: LAMPION_COMPUTE_PORT_MIN is above LAMPION_COMPUTE_PORT_MAX');
  }
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  return {
    dataDir: path.resolve(e.LAMPION_DATA_DIR),
    apiPort: e.LAMPION_API_PORT,
    proxyPort: e.LAMPION_PROXY_PORT,
    publicHost: e.LAMPION_PUBLIC_HOST,
    listenHost: e.LAMPION_LISTEN_HOST,
    temporalPort: e.LAMPION_TEMPORAL_PORT,
    temporalUiPort: e.LAMPION_TEMPORAL_UI_PORT,
    controlDbPort: e.LAMPION_CONTROL_DB_PORT,
    computePortMin: e.LAMPION_COMPUTE_PORT_MIN,
    computePortMax: e.LAMPION_COMPUTE_PORT_MAX,
    bootstrapApiKey: e.LAMPION_BOOTSTRAP_API_KEY,
    temporalNamespace: e.LAMPION_TEMPORAL_NAMESPACE,
    temporalBin: e.LAMPION_TEMPORAL_BIN,
    pgInstalls: [...e.LAMPION_PG_BINDIRS].sort((a, b) => a.major - b.major),
    pgOsUser: e.LAMPION_PG_OS_USER ?? (isRoot ? 'lampion' : undefined),
    hostId: e.LAMPION_HOST_ID,
    controlTaskQueue: e.LAMPION_TASK_QUEUE,
    storageDriver: e.LAMPION_STORAGE_DRIVER === 'auto' ? undefined : e.LAMPION_STORAGE_DRIVER,
    spareClusters: e.LAMPION_SPARE_CLUSTERS,
    autoBtrfs: e.LAMPION_AUTO_BTRFS,
    btrfsImageSize: e.LAMPION_BTRFS_IMAGE_SIZE,
    guardDir: e.LAMPION_GUARD_DIR,
    sweeps: { autoSuspend: e.LAMPION_AUTO_SUSPEND_SWEEP_SECONDS, ttl: e.LAMPION_TTL_SWEEP_SECONDS, autoscale: e.LAMPION_AUTOSCALE_SWEEP_SECONDS, backup: e.LAMPION_BACKUP_SWEEP_SECONDS, metrics: e.LAMPION_METRICS_SWEEP_SECONDS },
    backups: { intervalHours: e.LAMPION_BACKUP_INTERVAL_HOURS, retentionDays: e.LAMPION_BACKUP_RETENTION_DAYS, incrementalChainMax: e.LAMPION_BACKUP_INCREMENTAL_CHAIN },
    regions: e.LAMPION_REGIONS.length ? e.LAMPION_REGIONS : ['local'],
    regionCatalog: e.LAMPION_REGION_CATALOG,
    proxyRequireTls: e.LAMPION_PROXY_REQUIRE_TLS,
    tlsCertFile: e.LAMPION_TLS_CERT_FILE,
    tlsKeyFile: e.LAMPION_TLS_KEY_FILE,
    apiWaitMs: e.LAMPION_API_WAIT_MS,
    apiCacheMs: e.LAMPION_API_CACHE_MS,
    defaultOrgPlan: e.LAMPION_DEFAULT_ORG_PLAN,
    sql: {
      timeoutMs: Math.min(e.LAMPION_SQL_TIMEOUT_MS, e.LAMPION_SQL_MAX_TIMEOUT_MS),
      maxTimeoutMs: e.LAMPION_SQL_MAX_TIMEOUT_MS,
      maxRows: e.LAMPION_SQL_MAX_ROWS,
      poolSize: e.LAMPION_SQL_POOL_SIZE,
    },
    apiKeyTtlDays: e.LAMPION_API_KEY_TTL_DAYS,
    rateLimits: Object.fromEntries(
      PLANS.map((p) => [p.name, e.LAMPION_RATE_LIMIT_PER_MINUTE ?? e.LAMPION_RATE_LIMITS[p.name] ?? p.api_requests_per_minute]),
    ) as Record<PlanName, number>,
    ownerEmail: e.LAMPION_OWNER_EMAIL,
    invitationTtlHours: e.LAMPION_INVITATION_TTL_HOURS,
    webhooks: {
      allowPrivate: e.LAMPION_WEBHOOK_ALLOW_PRIVATE,
      timeoutMs: e.LAMPION_WEBHOOK_TIMEOUT_MS,
      retryInitialSeconds: e.LAMPION_WEBHOOK_RETRY_INITIAL_SECONDS,
      retryMaxSeconds: e.LAMPION_WEBHOOK_RETRY_MAX_SECONDS,
      retryHours: e.LAMPION_WEBHOOK_RETRY_HOURS,
    },
    secretKey: e.LAMPION_SECRET_KEY,
    faultInjection: e.LAMPION_FAULT_INJECTION,
    hostTimeouts: {
      heartbeatSeconds: e.LAMPION_HOST_HEARTBEAT_SECONDS,
      shortSeconds: e.LAMPION_HOST_ACTIVITY_TIMEOUT_SECONDS,
      longSeconds: e.LAMPION_HOST_LONG_ACTIVITY_TIMEOUT_SECONDS,
    },
    databaseUrl: e.DATABASE_URL,
    temporalAddress: e.TEMPORAL_ADDRESS,
    logLevel: e.LOG_LEVEL,
  };
}

