import fs from 'node:fs';
import path from 'node:path';
import { isolatedStackBase } from './isolation';
import pino from 'pino';
import { loadConfig } from '../../src/config';
import { Stack, Roles, ALL_ROLES } from '../../src/stack/stack';
import { issueApiKey, DEFAULT_ORG_ID, ensureOrganization, ensureMember } from '../../src/db/apiKeys';
import { randomToken } from '../../src/domain/ids';
import type { Role } from '../../src/domain/rbac';

export interface TestStack {
  stack: Stack;
  api: string;
  ownerKey: string;
  dataDir: string;
  env: Record<string, string>;
  /** A new member of the organization with that role, and a key of theirs. */
  key(role: Role, o?: { orgId?: string; expired?: boolean }): Promise<string>;
  member(role: Role, o?: { orgId?: string; expired?: boolean }): Promise<{ key: string; keyId: string; memberId: string; email: string }>;
  request(method: string, url: string, o?: { key?: string | null; body?: unknown; raw?: string }): Promise<{ status: number; body: any; headers: Headers }>;
  restart(roles?: Roles): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A full Lampion stack (workers, API, proxy) on the suite's shared Temporal and control
 * cluster, isolated by its own catalog database, data dir, task queues and ports.
 */
export async function startTestStack(extraEnv: Record<string, string> = {}, o: { logStream?: NodeJS.WritableStream } = {}): Promise<TestStack> {
  const { tag, dataDir, databaseUrl, ownerKey } = await isolatedStackBase('stack');
  const env: Record<string, string> = {
    LAMPION_DATA_DIR: dataDir,
    LAMPION_API_PORT: '0',
    LAMPION_PROXY_PORT: '0',
    LAMPION_HOST_ID: `t-${tag}`,
    LAMPION_TASK_QUEUE: `control-${tag}`,
    LAMPION_BOOTSTRAP_API_KEY: ownerKey,
    DATABASE_URL: databaseUrl,
    TEMPORAL_ADDRESS: process.env.LAMPION_TEST_TEMPORAL_ADDRESS!,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
    // Receivers in tests listen on loopback; production refuses private targets by default.
    LAMPION_WEBHOOK_ALLOW_PRIVATE: 'true',
    ...(process.env.LAMPION_PG_OS_USER ? { LAMPION_PG_OS_USER: process.env.LAMPION_PG_OS_USER } : {}),
    ...extraEnv,
  };
  const config = () => loadConfig({ ...process.env, ...env });
  // A test may capture every log line of the stack (workers, API, proxy) to search it.
  const logger = o.logStream ? pino({ level: env.LOG_LEVEL }, o.logStream as any) : pino({ level: env.LOG_LEVEL });
  // Paused: tests trigger schedules themselves, so runs happen exactly when a test expects them.
  const pauseSchedules = async (s: Stack) => {
    for (const spec of s.schedules) await s.temporal.schedule.getHandle(spec.id).pause('test stack: runs are triggered by tests');
  };
  let stack = await Stack.start(config(), ALL_ROLES, logger);
  await pauseSchedules(stack);
  const t: TestStack = {
    get stack() {
      return stack;
    },
    get api() {
      return `http://127.0.0.1:${stack.apiPort}`;
    },
    ownerKey,
    dataDir,
    env,
    async key(role, o = {}) {
      return (await t.member(role, o)).key;
    },
    async member(role, o = {}) {
      const orgId = o.orgId ?? DEFAULT_ORG_ID;
      await ensureOrganization(stack.db, orgId, orgId);
      const email = `${role}.${randomToken(8)}@test.lampion`;
      const memberId = await ensureMember(stack.db, { orgId, email, role });
      const now = o.expired ? new Date(Date.now() - 100 * 86_400_000) : new Date();
      // Like an invitation's first key: it follows the member's role.
      const issued = await issueApiKey(stack.db, { orgId, role: 'owner', name: `test ${role}`, ttlDays: 90, now, memberId });
      return { key: issued.key, keyId: issued.id, memberId, email };
    },
    async request(method, url, o = {}) {
      const headers: Record<string, string> = {};
      const key = o.key === undefined ? ownerKey : o.key;
      if (key) headers.authorization = `Bearer ${key}`;
      let body: string | undefined = o.raw;
      if (o.body !== undefined) body = JSON.stringify(o.body);
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${t.api}${url}`, { method, headers, body });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
    },
    async restart(roles = ALL_ROLES) {
      const ports = { LAMPION_PROXY_PORT: String(stack.proxyPort) };
      await stack.stop();
      Object.assign(env, ports);
      stack = await Stack.start(config(), roles, logger);
      await pauseSchedules(stack);
    },
    async stop() {
      await stack.deleteSchedules().catch(() => undefined);
      await stack.stop();
    },
  };
  return t;
}

export function proxyCaFile(t: TestStack): string {
  return path.join(t.dataDir, 'tls', 'proxy.crt');
}
