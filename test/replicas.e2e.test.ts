/**
 * Read replicas through the API, on every installed major: a hot standby of the branch with its
 * own endpoint, read-only, following the primary by streaming and, while the primary is
 * suspended, from its WAL archive; suspended and woken like any endpoint; removed with its branch.
 */
import fs from 'node:fs';
import { sql } from 'kysely';
import { startTestStack, TestStack } from './support/stack';
import { psql } from './support/clients';
import { TEST_MAJORS } from './support/pg';
import { runScheduleOnce, waitFor } from './support/schedules';
import { startOperation } from '../src/operations/client';
import { branchReset } from '../src/operations';
import { rootFailure } from '../src/operations/failures';
import { branchDirNames, postgresUnder } from './support/host';

jest.setTimeout(300_000);

const q = async (cs: string, text: string) => {
  const r = await psql(cs, text);
  if (r.code !== 0) throw new Error(`psql failed: ${r.stderr}`);
  return r.stdout.trim();
};
const ids = async (cs: string) => (await q(cs, "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM t")).split(',').filter(Boolean).map(Number);
/** Polls until the replica shows exactly `expected` (replay is asynchronous). */
const replicaShows = async (cs: string, expected: number[]) => {
  let last: number[] | string = [];
  try {
    await waitFor(async () => {
      last = await ids(cs).catch((e) => String(e));
      return JSON.stringify(last) === JSON.stringify(expected);
    }, 60_000);
  } catch {
    throw new Error(`replica shows ${JSON.stringify(last)}, expected ${JSON.stringify(expected)}`);
  }
};

describe.each(TEST_MAJORS)('read replicas on Postgres %i', (major) => {
  let t: TestStack;
  let project: any;
  let replica: any;
  const path = (p: string) => `/v1/projects/${project.id}${p}`;
  const replicas = (branchId = project.branch_id) => path(`/branches/${branchId}/replicas`);
  const status = async (url: string) => (await t.request('GET', url)).body.status;

  beforeAll(async () => {
    t = await startTestStack();
    const res = await t.request('POST', '/v1/projects', { body: { name: `replicas-${major}`, pg_version: major } });
    expect(res.status).toBe(201);
    project = res.body;
    await q(project.connection_string, 'CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)');
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('creates a read-only replica with its own endpoint that sees the primary’s writes and refuses its own (25006)', async () => {
    const res = await t.request('POST', replicas(), { body: { compute_cu: 0.5 } });
    expect(res.status).toBe(201);
    replica = res.body;
    expect(replica).toMatchObject({ status: 'running', read_only: true, branch_id: project.branch_id, compute_cu: 0.5, pg_version: major });
    expect(replica.id).toMatch(/^ep-/);
    expect(replica.id).not.toBe(project.endpoint_id);
    expect(replica.connection_string).toContain(`/${replica.id}.postgres?sslmode=require`);
    // Lag measured at creation, against the running primary.
    expect(replica.replication.lag_bytes).toEqual(expect.any(Number));
    expect(replica.replication.lag_bytes).toBeGreaterThanOrEqual(0);

    await replicaShows(replica.connection_string, [1]);
    await q(project.connection_string, 'INSERT INTO t VALUES (2)');
    await replicaShows(replica.connection_string, [1, 2]);
    expect(await q(replica.connection_string, 'SELECT pg_is_in_recovery()')).toBe('t');

    const write = await psql(replica.connection_string, 'INSERT INTO t VALUES (3)');
    expect(write.code).not.toBe(0);
    expect(write.stderr).toMatch(/read-only transaction/);
    const code = await psql(replica.connection_string, "DO $$ BEGIN INSERT INTO t VALUES (3); EXCEPTION WHEN OTHERS THEN RAISE EXCEPTION 'sqlstate=%', SQLSTATE; END $$");
    expect(code.stderr).toContain('sqlstate=25006');
    expect(await ids(project.connection_string)).toEqual([1, 2]);

    const list = await t.request('GET', replicas());
    expect(list.status).toBe(200);
    expect(list.body).toEqual([expect.objectContaining({ id: replica.id, status: 'running', read_only: true, connection_string: replica.connection_string })]);
    // Its own data dir, named after the replica; the branch's primary is unchanged.
    expect(fs.existsSync(t.stack.engine.layout.branchDataDir(replica.id))).toBe(true);
    expect(fs.existsSync(t.stack.engine.layout.walArchiveDir(replica.id))).toBe(false);
    expect((await t.request('GET', path(`/branches/${project.branch_id}`))).body.compute_id).toBe(project.endpoint_id);
    expect((await t.request('GET', path(`/endpoints/${replica.id}`))).body).toMatchObject({ role: 'replica', compute_cu: 0.5 });
  });

  it('keeps answering reads while the primary is suspended; writes after the primary wakes reach it', async () => {
    expect((await t.request('POST', path(`/endpoints/${project.endpoint_id}/suspend`))).status).toBe(200);
    expect(await ids(replica.connection_string)).toEqual([1, 2]);
    // Wakes the primary (wake-on-connect); the standby streams from it again.
    await q(project.connection_string, 'INSERT INTO t VALUES (4)');
    await replicaShows(replica.connection_string, [1, 2, 4]);
  });

  it('reports its lag: measured by the backup Schedule for running replicas', async () => {
    const before = (await t.request('GET', `${replicas()}/${replica.id}`)).body.replication;
    await runScheduleOnce(t, t.stack.temporal.schedule.getHandle(t.stack.schedules.find((s) => s.id.endsWith('-backups'))!.id));
    const after = (await t.request('GET', `${replicas()}/${replica.id}`)).body.replication;
    expect(Date.parse(after.checked_at)).toBeGreaterThan(Date.parse(before.checked_at));
    expect(after.lag_bytes).toEqual(expect.any(Number));
    expect(after.lag_bytes).toBeGreaterThanOrEqual(0);
    expect(after.replay_lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
  });

  it('catches up from the archive when resumed while the primary is suspended', async () => {
    expect((await t.request('POST', `${replicas()}/${replica.id}/suspend`)).body).toMatchObject({ id: replica.id, status: 'suspended' });
    await q(project.connection_string, 'INSERT INTO t VALUES (5)');
    expect((await t.request('POST', path(`/endpoints/${project.endpoint_id}/suspend`))).status).toBe(200);
    const res = await t.request('POST', `${replicas()}/${replica.id}/resume`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: replica.id, status: 'running' });
    // No primary to compare with: the lag in bytes is unknown, and the answer says why.
    expect(res.body.replication).toMatchObject({ lag_bytes: null, note: expect.stringMatching(/primary is suspended/) });
    await replicaShows(replica.connection_string, [1, 2, 4, 5]);
    expect(await status(path(`/endpoints/${project.endpoint_id}`))).toBe('suspended');
  });

  it('wakes on connect through the proxy, and auto-suspends when idle', async () => {
    expect((await t.request('POST', `${replicas()}/${replica.id}/suspend`)).status).toBe(200);
    expect(await status(`${replicas()}/${replica.id}`)).toBe('suspended');
    expect(await ids(replica.connection_string)).toEqual([1, 2, 4, 5]);
    await waitFor(async () => (await status(`${replicas()}/${replica.id}`)) === 'running');

    expect((await t.request('PATCH', path(`/endpoints/${replica.id}`), { body: { auto_suspend_seconds: 1 } })).status).toBe(200);
    await waitFor(async () => t.stack.proxy!.activeConnections === 0);
    await new Promise((r) => setTimeout(r, 200));
    await t.stack.db.updateTable('endpoints').set({ last_active_at: sql`now() - interval '1 minute'` }).where('id', '=', replica.id).execute();
    await runScheduleOnce(t, t.stack.temporal.schedule.getHandle(`${t.env.LAMPION_TASK_QUEUE}-auto-suspend`));
    await waitFor(async () => (await status(`${replicas()}/${replica.id}`)) === 'suspended');
    // The sweep's suspend records the state before its run ends; the next operation on the replica waits for that.
    await t.stack.temporal.workflow.getHandle(`endpoint-state/${replica.id}`).result();
    expect(postgresUnder(t.stack.engine.layout.branchDataDir(replica.id))).toEqual([]);
  });

  it('comes back after a restart of the stack, still a standby following the primary', async () => {
    expect((await t.request('POST', `${replicas()}/${replica.id}/resume`)).status).toBe(200);
    await t.restart();
    expect(await status(`${replicas()}/${replica.id}`)).toBe('running');
    expect(await q(replica.connection_string, 'SELECT pg_is_in_recovery()')).toBe('t');
    await q(project.connection_string, 'INSERT INTO t VALUES (6)');
    await replicaShows(replica.connection_string, [1, 2, 4, 5, 6]);
  });

  it.each(['createReplicaRecords:after', 'provisionReplicaCompute', 'provisionReplicaCompute:after', 'markReplicaReady'])(
    'leaves no replica, data dir, endpoint files or process when %s fails',
    async (fault) => {
      const layout = t.stack.engine.layout;
      const dirs = () => ({ branches: branchDirNames(layout), endpoints: fs.readdirSync(layout.endpointsDir).sort() });
      const before = dirs();
      const postmasters = postgresUnder(layout.branchesDir).sort();
      const f = t.stack.config.faultInjection;
      f.splice(0, f.length, fault);
      try {
        const res = await t.request('POST', replicas());
        expect(res.status).toBe(500);
        expect(res.body.error.details.failure_type).toBe('InjectedFault');
      } finally {
        f.splice(0, f.length);
      }
      expect(dirs()).toEqual(before);
      expect((await t.request('GET', replicas())).body.map((r: any) => r.id)).toEqual([replica.id]);
      const rows = await t.stack.db.selectFrom('endpoints').select('id').where('branch_id', '=', project.branch_id).execute();
      expect(rows.map((r) => r.id).sort()).toEqual([project.endpoint_id, replica.id].sort());
      expect(postgresUnder(layout.branchesDir).sort()).toEqual(postmasters);
    },
  );

  it('refuses to reset a branch with replicas; deleting the branch removes them (rows, data, processes)', async () => {
    const child = await t.request('POST', path('/branches'), { body: { name: `with-replica-${major}` } });
    expect(child.status).toBe(201);
    // A primary larger than its replica: a hot standby needs at least the primary's max_connections.
    const ep = path(`/endpoints/${child.body.compute_id}`);
    expect((await t.request('PATCH', ep, { body: { compute_cu: 1 } })).status).toBe(200);
    expect((await t.request('POST', `${ep}/suspend`)).status).toBe(200);
    expect((await t.request('POST', `${ep}/resume`)).status).toBe(200);
    expect(await q(child.body.connection_string, 'SHOW max_connections')).toBe('150');
    const rep = await t.request('POST', replicas(child.body.id), { body: { compute_cu: 0.25 } });
    expect(rep.status).toBe(201);
    expect(rep.body.compute_cu).toBe(0.25);
    expect(await q(rep.body.connection_string, 'SHOW max_connections')).toBe('150');
    expect(await q(rep.body.connection_string, 'SHOW shared_buffers')).toBe('128MB');
    await replicaShows(rep.body.connection_string, await ids(child.body.connection_string));

    const reset = await t.request('POST', path(`/branches/${child.body.id}/reset`));
    expect(reset.status).toBe(409);
    expect(reset.body.error.message).toMatch(/delete its replicas first/);
    // The workflow refuses too (a replica created while the route was deciding), and undoes its mark.
    const handle = await startOperation(
      t.stack.temporal,
      branchReset,
      { operationId: 'op-replicarace1', projectId: project.id, branchId: child.body.id, endpointId: child.body.compute_id, parentBranchId: project.branch_id, hostId: t.env.LAMPION_HOST_ID },
      { taskQueue: t.env.LAMPION_TASK_QUEUE },
    );
    await expect(handle.result()).rejects.toThrow();
    expect(rootFailure(await handle.result().catch((e) => e))).toMatchObject({ type: 'Conflict', message: expect.stringMatching(/delete its replicas first/) });
    expect(await status(path(`/branches/${child.body.id}`))).toBe('ready');
    await replicaShows(rep.body.connection_string, await ids(child.body.connection_string));

    const dir = t.stack.engine.layout.branchDataDir(rep.body.id);
    expect(postgresUnder(dir)).not.toEqual([]);
    expect((await t.request('DELETE', path(`/branches/${child.body.id}`))).status).toBe(204);
    expect(fs.existsSync(dir)).toBe(false);
    expect(fs.existsSync(t.stack.engine.layout.endpointDir(rep.body.id))).toBe(false);
    expect(postgresUnder(dir)).toEqual([]);
    expect(await t.stack.db.selectFrom('endpoints').select('id').where('id', '=', rep.body.id).executeTakeFirst()).toBeUndefined();
    expect((await psql(rep.body.connection_string, 'SELECT 1')).code).not.toBe(0);
  });

  it('deletes a replica: compute stopped, data gone, the primary untouched', async () => {
    const dir = t.stack.engine.layout.branchDataDir(replica.id);
    expect((await t.request('DELETE', `${replicas()}/${replica.id}`)).status).toBe(204);
    expect(fs.existsSync(dir)).toBe(false);
    expect(postgresUnder(dir)).toEqual([]);
    expect((await t.request('GET', replicas())).body).toEqual([]);
    expect((await t.request('GET', `${replicas()}/${replica.id}`)).status).toBe(404);
    // Resumed through the API (not woken by the read), so no wake is still recording at the stack's stop.
    expect((await t.request('POST', path(`/endpoints/${project.endpoint_id}/resume`))).status).toBe(200);
    expect(await ids(project.connection_string)).toEqual([1, 2, 4, 5, 6]);
  });
});
