import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import { newId } from '../src/domain/ids';
import { temporalFiles } from '../src/stack/temporalServer';
import { createProcessStack, processesMentioning, ProcessStack, waitFor } from './support/processStack';

/**
 * Crash tests on a whole stack in a process of its own with the embedded Temporal: kill -9 of
 * the node process, kill -9 of the Temporal server. Recovery must need nobody.
 */
/** Local ports some socket of this machine listens on (TCP, IPv4 and IPv6), from /proc. */
function listeningPorts(): Set<number> {
  const out = new Set<number>();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!fs.existsSync(f)) continue;
    for (const line of fs.readFileSync(f, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] === '0A') out.add(parseInt(cols[1].split(':').pop()!, 16));
    }
  }
  return out;
}

describe('crashes', () => {
  let s: ProcessStack;
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    // 202 at once, so the kill lands while the create runs.
    // The copy driver, so a fork of the tens of MB below takes long enough to be caught mid-way.
    s = await createProcessStack({
      LAMPION_API_WAIT_MS: '0',
      LAMPION_STORAGE_DRIVER: 'copy',
      // The webhook case's receiver listens on loopback, and its retries come within a second.
      LAMPION_WEBHOOK_ALLOW_PRIVATE: 'true',
      LAMPION_WEBHOOK_RETRY_INITIAL_SECONDS: '0.5',
      LAMPION_WEBHOOK_RETRY_MAX_SECONDS: '1',
    });
    await s.start();
  });

  afterAll(async () => {
    if (!s) return;
    await s.stop();
    // Nothing of the stack is left: no process on its data dir, no port held.
    const left = processesMentioning(s.dataDir);
    const busy: number[] = [];
    const listening = listeningPorts();
    for (const p of s.ports) if (listening.has(p)) busy.push(p);
    if (process.env.LAMPION_TEST_KEEP_LOGS) require('node:fs').writeFileSync(process.env.LAMPION_TEST_KEEP_LOGS, s.output());
    await s.destroy();
    // eslint-disable-next-line no-console
    console.log('crash test timings (ms):', JSON.stringify(timings));
    expect(left).toEqual([]);
    expect(busy).toEqual([]);
  });

  const waitProjectSettled = (projectId: string, operationId: string, timeoutMs: number) =>
    waitFor(
      `project ${projectId} to be ready or gone, with operation ${operationId} final`,
      async () => {
        const p = await s.request('GET', `/v1/projects/${projectId}`);
        const op = await s.request('GET', `/v1/projects/${projectId}/operations/${operationId}`);
        const settled = (p.status === 200 && p.body.status === 'ready') || p.status === 404;
        const opFinal = op.status === 404 || (op.status === 200 && op.body.status !== 'running');
        return settled && opFinal ? { project: p, operation: op } : undefined;
      },
      timeoutMs,
      500,
    );

  test('kill -9 of the node process during a project create: the next start just works and the create settles', async () => {
    const firstTemporal = s.temporalPids();
    expect(firstTemporal).toHaveLength(1);
    const created = await s.request('POST', '/v1/projects', { body: { name: 'crash-a' } });
    expect(created.status).toBe(202);
    const { project_id: projectId, operation_id: operationId } = created.body;
    await s.kill9();
    const killedAt = Date.now();

    // The embedded Temporal dies with the stack (parent-death signal), within moments.
    await waitFor('the first Temporal to die with the stack', () => processesMentioning(temporalFiles(s.dataDir).db).length === 0 || undefined, 5000, 50);
    timings.temporalGoneAfterNodeKill = Date.now() - killedAt;

    // The next start works: no "port … is already in use".
    const restartAt = Date.now();
    await s.start();
    timings.restartAfterNodeKill = Date.now() - restartAt;
    expect(s.output()).not.toMatch(/already in use/);
    const second = s.temporalPids();
    expect(second).toHaveLength(1);
    expect(second).not.toEqual(firstTemporal);

    const { project, operation } = await waitProjectSettled(projectId, operationId, 60_000);
    timings.createSettledAfterKill = Date.now() - killedAt;
    if (project.status === 200) expect(project.body.status).toBe('ready');
    if (operation.status === 200) expect(operation.body.status).not.toBe('running');
    const health = await s.request('GET', '/health');
    expect(health.status).toBe(200);
  });

  test('kill -9 of the embedded Temporal: the stack restarts it; /health and mutations answer 503 quickly meanwhile', async () => {
    const healthy = async (what: string, timeoutMs: number) =>
      waitFor(
        what,
        async () => {
          const h = await s.request('GET', '/health');
          slowestHealth = Math.max(slowestHealth, h.ms);
          expect(h.ms).toBeLessThan(2000);
          return h.status === 200 || undefined;
        },
        timeoutMs,
        100,
      );
    let slowestHealth = 0;

    // 1. A plain kill: the supervisor brings it back (500 ms backoff, then its start), and the
    //    workers poll again.
    const [first] = s.temporalPids();
    expect(first).toBeDefined();
    process.kill(first, 'SIGKILL');
    const killedAt = Date.now();
    await waitFor('the restarted Temporal', () => (s.temporalPids().some((p) => p !== first) ? true : undefined), 30_000, 50);
    timings.temporalProcessBackAfterKill = Date.now() - killedAt;
    await healthy('health 200 after the Temporal restart', 60_000);
    timings.healthyAfterTemporalKill = Date.now() - killedAt;
    expect(s.output()).toMatch(/embedded Temporal exited \(137\); restarting it in 500 ms/);

    // 2. A kill while something holds its lock (it cannot come back until released): the
    //    outage lasts long enough to look at. The lock is taken as the killed server lets go of
    //    it, before the supervisor's restart.
    const [second] = s.temporalPids();
    // Its own process group, so the kill below takes flock and its sleep together.
    const holder = spawn('flock', ['--close', temporalFiles(s.dataDir).lock, 'sleep', '60'], { stdio: 'ignore', detached: true });
    await new Promise((r) => setTimeout(r, 200));
    process.kill(second, 'SIGKILL');
    const outageAt = Date.now();
    try {
      // /health answers within 2 s, 503 with temporal down.
      const down = await waitFor(
        '/health to show temporal down',
        async () => {
          const h = await s.request('GET', '/health');
          slowestHealth = Math.max(slowestHealth, h.ms);
          expect(h.ms).toBeLessThan(2000);
          return h.status === 503 && h.body.components.temporal.status === 'down' ? h : undefined;
        },
        5000,
        20,
      );
      timings.healthDownAnswerMs = down.ms;
      expect(down.body.status).toBe('degraded');

      // A mutation answers 503 with a retry hint, at once.
      const refused = await s.request('POST', '/v1/projects', { body: { name: 'crash-b-refused' } });
      timings.refusedMutationMs = refused.ms;
      expect(refused.ms).toBeLessThan(2000);
      expect(refused.status).toBe(503);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(refused.body.error).toMatchObject({ code: 'temporal_unavailable', details: { component: 'temporal' } });
      expect(typeof refused.body.error.message).toBe('string');
      // Reads that do not need Temporal still answer.
      expect((await s.request('GET', '/v1/projects')).status).toBe(200);
    } finally {
      process.kill(-holder.pid!, 'SIGKILL');
    }
    const releasedAt = Date.now();
    await healthy('health 200 once the lock is released', 60_000);
    timings.healthyAfterLockRelease = Date.now() - releasedAt;
    timings.secondOutage = Date.now() - outageAt;
    timings.slowestHealth = slowestHealth;
    expect(s.temporalPids()).toHaveLength(1);

    // A create after the recovery succeeds.
    const createdAt = Date.now();
    const created = await s.request('POST', '/v1/projects', { body: { name: 'crash-b' } });
    expect(created.status).toBe(202);
    const { project } = await waitProjectSettled(created.body.project_id, created.body.operation_id, 60_000);
    timings.createAfterTemporalRestart = Date.now() - createdAt;
    expect(project.status).toBe(200);
    expect(project.body.status).toBe('ready');
  });

  // ---- kill -9 of the node process during branch create, reset and delete, at several moments ----

  /** One query on the stack's catalog (its own database on the suite's control Postgres). */
  const catalog = async (text: string, params: unknown[] = []): Promise<any[]> => {
    const c = new Client({ connectionString: s.env.DATABASE_URL });
    await c.connect();
    try {
      return (await c.query(text, params)).rows;
    } finally {
      await c.end();
    }
  };

  /** SQL through the proxy with the real pg client and the connection string the API gives. */
  const sqlOn = async (projectId: string, endpointId: string, text: string): Promise<any[]> => {
    const ep = await s.request('GET', `/v1/projects/${projectId}/endpoints/${endpointId}`);
    if (ep.status !== 200 || !ep.body.connection_string) throw new Error(`endpoint ${endpointId}: ${ep.status} ${JSON.stringify(ep.body)}`);
    const u = new URL(ep.body.connection_string);
    expect(u.searchParams.get('sslmode')).toBe('require');
    const c = new Client({
      host: u.hostname,
      port: Number(u.port),
      user: decodeURIComponent(u.username),
      password: decodeURIComponent(u.password),
      database: decodeURIComponent(u.pathname.slice(1)),
      ssl: { ca: fs.readFileSync(path.join(s.dataDir, 'tls', 'proxy.crt'), 'utf8') },
      connectionTimeoutMillis: 20_000,
    });
    await c.connect();
    try {
      const r: any = await c.query(text);
      return (Array.isArray(r) ? r[r.length - 1] : r).rows;
    } finally {
      await c.end();
    }
  };

  let project: { id: string; branch_id: string; endpoint_id: string };
  /** Ready branches (not the primary) the next round may reset or delete. */
  let pool: { id: string; endpointId: string }[] = [];
  /** pg ports of endpoints whose branch is gone: nothing may listen there unless an endpoint reuses it. */
  const portsOfDeleted: number[] = [];
  let branchSeq = 0;

  const branchReady = (branchId: string, timeoutMs: number) =>
    waitFor(
      `branch ${branchId} to be ready`,
      async () => {
        const b = await s.request('GET', `/v1/projects/${project.id}/branches/${branchId}`);
        if (b.status === 404) throw new Error(`branch ${branchId} is gone`);
        return b.body.status === 'ready' ? b.body : undefined;
      },
      timeoutMs,
      200,
    );

  const newReadyBranch = async () => {
    const r = await s.request('POST', `/v1/projects/${project.id}/branches`, { body: { name: `pool-${++branchSeq}` } });
    expect([201, 202]).toContain(r.status);
    const b = await branchReady(r.body.branch_id ?? r.body.id, 60_000);
    return { id: b.id as string, endpointId: b.compute_id as string };
  };

  /** The operation once it is no longer running (the API may be down a moment after a restart). */
  const opFinal = (id: string) =>
    waitFor(`operation ${id} final`, async () => {
      const r = await s.request('GET', `/v1/projects/${project.id}/operations/${id}`, { timeoutMs: 2000 }).catch(() => undefined);
      return r?.status === 200 && r.body.status !== 'running' ? r.body : undefined;
    }, 90_000, 200);

  const opStep = async (operationId: string | undefined) => {
    if (!operationId) return undefined;
    const op = await s.request('GET', `/v1/projects/${project.id}/operations/${operationId}`, { timeoutMs: 2000 }).catch(() => undefined);
    return op?.status === 200 ? (op.body.status === 'running' ? (op.body.step as string) : op.body.status) : undefined;
  };

  test('setup: a project whose primary branch holds tens of MB', async () => {
    const created = await s.request('POST', '/v1/projects', { body: { name: 'crash-branches' } });
    expect(created.status).toBe(202);
    const p = await waitFor(
      'the project to be ready',
      async () => {
        const r = await s.request('GET', `/v1/projects/${created.body.project_id}`);
        return r.body?.status === 'ready' ? r.body : undefined;
      },
      60_000,
      200,
    );
    project = { id: p.id, branch_id: p.branch_id, endpoint_id: p.endpoint_id };
    await sqlOn(project.id, project.endpoint_id, `CREATE TABLE parent_marker (v text); INSERT INTO parent_marker VALUES ('parent');
      CREATE TABLE filler AS SELECT g, repeat(md5(g::text), 24) AS pad FROM generate_series(1, 40000) g`);
    const size = await sqlOn(project.id, project.endpoint_id, `SELECT pg_database_size('postgres')::bigint AS n`);
    expect(Number(size[0].n)).toBeGreaterThan(30 * 1024 * 1024);
  });

  interface RoundOp {
    kind: 'create' | 'reset' | 'delete';
    branchId?: string;
    endpointId?: string;
    pgPort?: number;
    marker?: string;
    sent?: Promise<unknown>;
    operationId?: string;
    stepAtKill?: string;
  }

  /**
   * One round: a create, a reset and a delete on three branches (sent together or staggered),
   * kill -9 of the node process when `killWhen` says so, start again, then wait (bounded) until
   * every operation is final and every branch settled, and check what each left behind.
   */
  const round = async (name: string, o: { staggerDeleteMs?: number; killWhen: (ops: RoundOp[], sentAt: number) => Promise<boolean>; killTimeoutMs?: number; orphanRow?: boolean }) => {
    while (pool.length < 2) pool.push(await newReadyBranch());
    const [toDelete, toReset] = pool.splice(0, 2);
    const marker = `marker-${name}`;
    await sqlOn(project.id, toReset.endpointId, `CREATE TABLE IF NOT EXISTS child_marker (v text); INSERT INTO child_marker VALUES ('${marker}')`);
    const delEp = await s.request('GET', `/v1/projects/${project.id}/endpoints/${toDelete.endpointId}`);
    const ops: RoundOp[] = [
      { kind: 'create' },
      { kind: 'reset', branchId: toReset.id, endpointId: toReset.endpointId, marker },
      { kind: 'delete', branchId: toDelete.id, endpointId: toDelete.endpointId, pgPort: delEp.body.pg_port },
    ];
    const since = (await catalog('SELECT now() AS t'))[0].t;
    // What a crash between the API's insert and the workflow start leaves: a running row, no run.
    const orphan = o.orphanRow ? { id: newId('operation'), branchId: newId('branch') } : undefined;
    if (orphan) {
      const [{ org_id }] = await catalog('SELECT org_id FROM projects WHERE id = $1', [project.id]);
      await catalog(`INSERT INTO operations (id, org_id, project_id, kind, workflow_id, status, step) VALUES ($1, $2, $3, 'branch.create', $4, 'running', 'queued')`, [
        orphan.id,
        org_id,
        project.id,
        `branch/${orphan.branchId}`,
      ]);
    }
    const send = (op: RoundOp) => {
      const req =
        op.kind === 'create'
          ? s.request('POST', `/v1/projects/${project.id}/branches`, { body: { name: `created-${name}` } })
          : op.kind === 'reset'
            ? s.request('POST', `/v1/projects/${project.id}/branches/${op.branchId}/reset`)
            : s.request('DELETE', `/v1/projects/${project.id}/branches/${op.branchId}`);
      op.sent = req.then(
        (r) => {
          if (r.status === 202) {
            op.operationId = r.body.operation_id;
            op.branchId ??= r.body.branch_id;
          }
          return r;
        },
        () => undefined, // the kill cut it off
      );
    };
    const sentAt = Date.now();
    send(ops[0]);
    send(ops[1]);
    if (o.staggerDeleteMs) setTimeout(() => send(ops[2]), o.staggerDeleteMs);
    else send(ops[2]);
    const deadline = Date.now() + (o.killTimeoutMs ?? 10_000);
    while (!(await o.killWhen(ops, sentAt)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await s.kill9();
    const killedAt = Date.now();
    for (const op of ops) op.stepAtKill = op.stepAtKill ?? (op.operationId ? 'answered' : op.sent ? 'sent' : 'not sent');

    const restartAt = Date.now();
    await s.start();
    const upAt = Date.now();

    // The operations of the round, as the catalog has them (a request cut off by the kill may or
    // may not have written one; it then has no workflow and must still end).
    const rows = await catalog(`SELECT id, kind, workflow_id FROM operations WHERE project_id = $1 AND created_at >= $2 AND kind LIKE 'branch.%'`, [project.id, since]);
    for (const op of ops) {
      const row = rows.find((r) => r.kind === `branch.${op.kind}` && (op.kind === 'create' ? !orphan || r.id !== orphan.id : r.workflow_id === `branch/${op.branchId}`));
      if (row) {
        op.operationId ??= row.id;
        op.branchId ??= row.workflow_id.slice('branch/'.length);
      }
    }
    const opRow = async (id: string) => (await catalog('SELECT status, step, error FROM operations WHERE id = $1', [id]))[0];
    const branchRow = async (id: string) => (await catalog('SELECT status FROM branches WHERE id = $1', [id]))[0];
    const settled = await waitFor(
      `round ${name}: every operation final and every branch settled`,
      async () => {
        const out: Record<string, { op?: string; branch?: string }> = {};
        for (const op of ops) {
          const r = op.operationId ? await opRow(op.operationId) : undefined;
          if (r?.status === 'running') return undefined;
          const b = op.branchId ? await branchRow(op.branchId) : undefined;
          if (b && b.status !== 'ready' && !(op.kind === 'delete' && b.status === 'deleting')) return undefined;
          out[op.kind] = { op: r?.status ?? 'none', branch: b?.status ?? 'gone' };
        }
        if (orphan) {
          const r = await opRow(orphan.id);
          if (r.status === 'running') return undefined;
          out.orphan = { op: r.status };
        }
        return out;
      },
      60_000,
      250,
    );
    const settledAt = Date.now();
    recovery[name] = {
      stepsAtKill: Object.fromEntries(ops.map((op) => [op.kind, op.stepAtKill])),
      outcome: settled,
      restartMs: upAt - restartAt,
      finalAfterRestartMs: settledAt - upAt,
      finalAfterKillMs: settledAt - killedAt,
    };

    // Create: ready and serving the parent's data through the proxy, or gone entirely.
    const [create, reset, del] = ops;
    if (create.branchId) {
      const b = await s.request('GET', `/v1/projects/${project.id}/branches/${create.branchId}`);
      if (b.status === 200) {
        expect(b.body.status).toBe('ready');
        expect(await sqlOn(project.id, b.body.compute_id, 'SELECT v FROM parent_marker')).toEqual([{ v: 'parent' }]);
        pool.push({ id: b.body.id, endpointId: b.body.compute_id });
      } else {
        expect(b.status).toBe(404);
        if (create.operationId) expect((await opRow(create.operationId)).status).toBe('failed');
      }
    }
    // Reset: completed (the parent's data) or rolled back with the old data intact; serving either way.
    const resetOp = reset.operationId ? await opRow(reset.operationId) : undefined;
    const rb = await s.request('GET', `/v1/projects/${project.id}/branches/${reset.branchId}`);
    expect(rb.status).toBe(200);
    expect(rb.body.status).toBe('ready');
    const childMarker = await sqlOn(project.id, reset.endpointId!, `SELECT to_regclass('child_marker') IS NOT NULL AS kept`);
    if (resetOp?.status === 'succeeded') {
      expect(childMarker).toEqual([{ kept: false }]);
      expect(await sqlOn(project.id, reset.endpointId!, 'SELECT v FROM parent_marker')).toEqual([{ v: 'parent' }]);
    } else {
      expect(childMarker).toEqual([{ kept: true }]);
      expect(await sqlOn(project.id, reset.endpointId!, 'SELECT v FROM child_marker')).toEqual([{ v: reset.marker }]);
    }
    pool.push({ id: reset.branchId!, endpointId: reset.endpointId! });
    // Delete: finished, or the branch is in a state a retried DELETE completes.
    const db = await s.request('GET', `/v1/projects/${project.id}/branches/${del.branchId}`);
    if (db.status === 200) {
      recovery[name].deleteRetried = true;
      const again = await s.request('DELETE', `/v1/projects/${project.id}/branches/${del.branchId}`);
      expect([202, 204]).toContain(again.status);
      await waitFor('the retried delete to finish', async () => (await s.request('GET', `/v1/projects/${project.id}/branches/${del.branchId}`)).status === 404 || undefined, 60_000, 250);
    } else {
      expect(db.status).toBe(404);
    }
    if (del.pgPort) portsOfDeleted.push(del.pgPort);
    // The operation whose workflow never started ends failed, and nothing was created for it.
    if (orphan) {
      const r = await opRow(orphan.id);
      expect(r.status).toBe('failed');
      expect(r.error.message).toMatch(/never started/);
      expect((await s.request('GET', `/v1/projects/${project.id}/operations/${orphan.id}`)).body.status).toBe('failed');
      expect(await branchRow(orphan.branchId)).toBeUndefined();
    }
  };
  const recovery: Record<string, any> = {};
  const stepIs = (op: RoundOp, steps: string[]) => {
    const cur = op.stepAtKill;
    return cur !== undefined && steps.includes(cur);
  };
  /** Polls the operation's live step; true once it is one of `steps`. */
  const reached = async (op: RoundOp, steps: string[]) => {
    const step = await opStep(op.operationId);
    if (step !== undefined) op.stepAtKill = step;
    return stepIs(op, steps);
  };

  test('kill -9 right as the 202s arrive (create, reset and delete just started): all recover by themselves', async () => {
    await round('at-202', { orphanRow: true, killWhen: async (ops) => ops.every((op) => op.operationId !== undefined) });
  });

  test('kill -9 ~100 ms and ~500 ms after the requests were sent: all recover by themselves', async () => {
    await round('100ms', { killWhen: async (_ops, sentAt) => Date.now() - sentAt >= 100 });
    await round('500ms', { killWhen: async (_ops, sentAt) => Date.now() - sentAt >= 500 });
  });

  test('kill -9 mid-fork of a reset and a create, and mid-delete: all recover by themselves', async () => {
    // The reset caught while it copies the parent (its old data set aside), the create in its fork.
    await round('reset-fork', {
      killWhen: async (ops) => {
        await reached(ops[0], ['fork_and_start']);
        await reached(ops[2], ['stop_compute', 'remove_data']);
        return reached(ops[1], ['fork']);
      },
    });
    // The delete sent last, caught while it stops the compute or removes the data; the reset by then
    // in its fork or starting the new compute.
    await round('delete-mid', {
      staggerDeleteMs: 400,
      killWhen: async (ops) => {
        await reached(ops[0], ['fork_and_start', 'finalize']);
        await reached(ops[1], ['set_aside', 'fork', 'start_compute']);
        return reached(ops[2], ['stop_compute', 'remove_data']);
      },
    });
  });

  test('kill -9 mid in-place restore: the branch settles by itself, rewound or as it was, serving', async () => {
    const bk = await s.request('POST', `/v1/projects/${project.id}/backups`, { body: { name: 'before-crash', branch_id: project.branch_id } });
    expect(bk.status).toBe(202);
    expect((await opFinal(bk.body.operation_id)).status).toBe('succeeded');
    const backup = (await s.request('GET', `/v1/projects/${project.id}/backups/${bk.body.backup_id}`)).body;
    await sqlOn(project.id, project.endpoint_id, "INSERT INTO parent_marker VALUES ('after-backup')");
    const res = await s.request('POST', `/v1/projects/${project.id}/branches/${project.branch_id}/restore`, { body: { source_lsn: backup.lsn } });
    expect(res.status).toBe(202);
    const op: RoundOp = { kind: 'reset', operationId: res.body.operation_id };
    const deadline = Date.now() + 15_000;
    while (!(await reached(op, ['stop_compute', 'set_aside', 'restore', 'start_compute'])) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await s.kill9();
    await s.start();
    const final = await opFinal(res.body.operation_id);
    recovery['in-place-restore'] = { stepAtKill: op.stepAtKill, outcome: final.status };
    await waitFor('the branch ready', async () => ((await s.request('GET', `/v1/projects/${project.id}/branches/${project.branch_id}`)).body.status === 'ready' ? true : undefined), 60_000, 250);
    const markers = (await sqlOn(project.id, project.endpoint_id, 'SELECT v FROM parent_marker ORDER BY v')).map((r) => r.v);
    expect(markers).toEqual(final.status === 'succeeded' ? ['parent'] : ['after-backup', 'parent']);
  });

  test('kill -9 mid merge: the merge settles by itself, applied once, its scratch compute of the fork point gone', async () => {
    // The fork point is read from a base of the parent's current history (the restore above began a new one).
    const bk = await s.request('POST', `/v1/projects/${project.id}/backups`, { body: { name: 'before-merge', branch_id: project.branch_id } });
    expect(bk.status).toBe(202);
    expect((await opFinal(bk.body.operation_id)).status).toBe('succeeded');
    const b = await newReadyBranch();
    await sqlOn(project.id, b.endpointId, 'ALTER TABLE parent_marker ADD COLUMN merged_note text; CREATE INDEX parent_marker_v ON parent_marker (v)');
    const res = await s.request('POST', `/v1/projects/${project.id}/branches/${b.id}/merge`, { body: {} });
    expect(res.status).toBe(202);
    const op: RoundOp = { kind: 'reset', operationId: res.body.operation_id };
    const deadline = Date.now() + 20_000;
    while (!(await reached(op, ['restore_fork_point', 'diff', 'apply'])) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await s.kill9();
    await s.start();
    const final = await opFinal(res.body.operation_id);
    recovery['merge'] = { stepAtKill: op.stepAtKill, outcome: final.status };
    expect(final.status).toBe('succeeded');
    const cols = await sqlOn(project.id, project.endpoint_id, "SELECT column_name FROM information_schema.columns WHERE table_name = 'parent_marker' ORDER BY ordinal_position");
    expect(cols.map((r) => r.column_name)).toEqual(['v', 'merged_note']);
    expect((await sqlOn(project.id, project.endpoint_id, "SELECT count(*)::int AS n FROM pg_indexes WHERE indexname = 'parent_marker_v'"))[0].n).toBe(1);
    // The scratch compute's data and endpoint dirs are checked with everything else below.
  });

  test('kill -9 mid webhook retry: the delivery goes on after the restart and lands once healthy, signed the same', async () => {
    let healthy = false;
    const got: { id: string; body: string }[] = [];
    const receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        got.push({ id: String(req.headers['webhook-id']), body });
        res.statusCode = healthy ? 200 : 500;
        res.end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
      const hook = await s.request('POST', '/v1/orgs/webhooks', { body: { url, events: ['api_key.created'] } });
      expect(hook.status).toBe(201);
      expect((await s.request('POST', '/v1/orgs/api-keys', { body: { name: 'crash-hook' } })).status).toBe(201);
      await waitFor('a failed attempt', () => got.length >= 1 || undefined, 30_000, 50);
      await s.kill9();
      healthy = true;
      await s.start();
      const delivered = await waitFor(
        'the delivery delivered after the restart',
        async () => {
          const d = (await s.request('GET', `/v1/orgs/webhooks/${hook.body.id}/deliveries`)).body;
          return d?.[0]?.status === 'delivered' ? d[0] : undefined;
        },
        60_000,
        200,
      );
      recovery['webhook'] = { attempts: delivered.attempts.length, outcome: delivered.status };
      expect(new Set(got.map((g) => g.id))).toEqual(new Set([delivered.id]));
      expect(JSON.parse(got.at(-1)!.body)).toMatchObject({ type: 'api_key.created', data: { name: 'crash-hook' } });
    } finally {
      await new Promise((r) => receiver.close(r));
    }
  });

  test('afterwards: no orphan process, data dir, endpoint dir, port, set-aside dir, transitional row or running operation', async () => {
    // eslint-disable-next-line no-console
    console.log('branch crash recovery (ms):', JSON.stringify(recovery, null, 1));
    expect(await catalog(`SELECT id, kind, workflow_id FROM operations WHERE status = 'running'`)).toEqual([]);
    expect(await catalog(`SELECT id, status FROM branches WHERE status <> 'ready'`)).toEqual([]);
    expect(await catalog(`SELECT id, status FROM projects WHERE status IN ('provisioning', 'deleting')`)).toEqual([]);
    const branches = (await catalog('SELECT id FROM branches')).map((r) => r.id).sort();
    const endpoints = await catalog('SELECT id, project_id, branch_id, port, status FROM endpoints');
    const entries = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []);
    // Data dirs and catalog rows match one to one; nothing set aside or half-copied is left.
    // _bases and _spares are the platform's own (base backups, clusters initdb'd ahead of need).
    expect(entries(path.join(s.dataDir, 'branches')).filter((e) => !e.startsWith('_'))).toEqual(branches);
    expect(entries(path.join(s.dataDir, 'wal')).filter((e) => !branches.includes(e))).toEqual([]);
    expect(entries(path.join(s.dataDir, 'endpoints'))).toEqual(endpoints.map((e) => e.id).sort());
    // A postmaster runs for exactly the catalog's running endpoints, none for a deleted branch.
    const postmasters = processesMentioning(path.join(s.dataDir, 'branches'))
      .map((p) => /\s-D\s+(\S+)/.exec(p.cmd)?.[1])
      .filter((d): d is string => Boolean(d) && !d!.includes('/_spares/'))
      .map((d) => path.basename(d))
      .sort();
    expect(postmasters).toEqual(endpoints.filter((e) => e.status === 'running').map((e) => e.branch_id).sort());
    // Every ready branch answers through the proxy.
    for (const e of endpoints) expect(await sqlOn(e.project_id, e.id, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    // Nothing listens on the ports of deleted endpoints (unless a new endpoint was given the same
    // one). Listening, not bindable: a port in the ephemeral range may be the local end of some
    // outgoing connection of the moment (a webhook delivery, a pg client), which is no leak.
    const inUse = new Set(endpoints.map((e) => e.port));
    const listening = listeningPorts();
    for (const port of portsOfDeleted) if (!inUse.has(port)) expect([port, listening.has(port)]).toEqual([port, false]);
  });
});
