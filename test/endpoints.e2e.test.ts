import { Client } from 'pg';
import fs from 'node:fs';
import { sql } from 'kysely';
import { runScheduleOnce, waitFor } from './support/schedules';
import { startTestStack, TestStack, proxyCaFile } from './support/stack';
import { psql } from './support/clients';
import { postgresPids } from '../src/engine/postmaster';
import { SYSTEM_ROLE } from '../src/engine/cluster';

describe('endpoints: scale to zero, wake on connect, allowlist, sizes, schedules', () => {
  let t: TestStack;
  let project: any;
  let ca: string;
  const path = (p: string) => `/v1/projects/${project.id}${p}`;
  const ep = () => `/endpoints/${project.endpoint_id}`;

  const connect = (over: { user?: string; password?: string } = {}) =>
    new Client({
      host: '127.0.0.1',
      port: project.port,
      user: 'cloud_admin',
      password: project.pg_password,
      database: `${project.endpoint_id}.postgres`,
      ssl: { ca },
      ...over,
    });
  const connectError = async (over: { user?: string; password?: string }) => {
    const c = connect(over);
    c.on('error', () => {});
    return c.connect().then(
      async () => {
        await c.end();
        throw new Error('connection unexpectedly succeeded');
      },
      (err: Error & { code?: string }) => err,
    );
  };

  const resumeEvents = async () =>
    (await t.stack.db.selectFrom('compute_events').select('event').where('endpoint_id', '=', project.endpoint_id).where('event', '=', 'resume').execute()).length;

  beforeAll(async () => {
    t = await startTestStack();
    project = (await t.request('POST', '/v1/projects', { body: { name: 'endpoints' } })).body;
    ca = fs.readFileSync(proxyCaFile(t), 'utf8');
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('lists and gets the endpoint, with secrets only for developers and above', async () => {
    const list = await t.request('GET', path('/endpoints'));
    expect(list.status).toBe(200);
    expect(list.body).toEqual([expect.objectContaining({ id: project.endpoint_id, status: 'running', pg_password: project.pg_password, auto_suspend_seconds: 300, compute_cu: 0.25 })]);
    const viewer = await t.key('viewer');
    const asViewer = await t.request('GET', path(ep()), { key: viewer });
    expect(asViewer.status).toBe(200);
    expect(asViewer.body).not.toHaveProperty('pg_password');
    const sizes = await t.request('GET', path('/endpoints/compute-sizes'));
    expect(sizes.body).toEqual(expect.arrayContaining([{ cu: 0.25, label: '0.25 CU', vcpu: 0.25, memory_gb: 0.5 }, { cu: 1, label: '1 CU', vcpu: 1, memory_gb: 2 }]));
  });

  it('relays to computes on its own host over their private socket, with the password still checked and the platform role refused', async () => {
    const c = connect();
    await c.connect();
    const r = await c.query('SELECT inet_client_addr() IS NULL AS over_socket, current_user AS usr');
    expect(r.rows[0]).toEqual({ over_socket: true, usr: 'cloud_admin' });
    await c.end();
    expect(await connectError({ password: 'not-the-password' })).toMatchObject({ code: '28P01' });
    // The compute trusts this role on its socket; the proxy must never let a client be it.
    expect(await connectError({ user: SYSTEM_ROLE })).toMatchObject({ code: '28000', message: `role "${SYSTEM_ROLE}" cannot connect through the proxy` });
  });

  it('suspends, then a client through the proxy wakes it and is served', async () => {
    const s = await t.request('POST', path(`${ep()}/suspend`));
    expect(s.status).toBe(200);
    expect(s.body).toMatchObject({ id: project.endpoint_id, status: 'suspended' });
    expect(await t.stack.engine.endpointRunning({ branchId: project.branch_id })).toBe(false);

    const r = await psql(project.connection_string, 'SELECT 42');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('42');
    const woken = (await t.request('GET', path(ep()))).body;
    expect(woken.status).toBe('running');

    // Under its limits right after serving the client (the move does not hold the client up):
    // the postmaster and everything it forked share the endpoint's groups.
    if (woken.limits_enforced) {
      const dataDir = t.stack.engine.layout.branchDataDir(project.branch_id);
      const outside = async () => {
        const pids = await postgresPids(dataDir);
        expect(pids.length).toBeGreaterThan(3);
        return pids.filter((pid) => {
          const groups = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
          return !new RegExp(`memory:/lampion/${project.endpoint_id}$`, 'm').test(groups) || !new RegExp(`cpu[,a-z]*:/lampion/${project.endpoint_id}$`, 'm').test(groups);
        });
      };
      for (let i = 0; i < 50 && (await outside()).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
      expect(await outside()).toEqual([]);
    }
  });

  it('resumes once for twenty clients arriving together', async () => {
    // Right after the previous test's wake: the suspend queues behind the wake's workflow, no 409.
    expect((await t.request('POST', path(`${ep()}/suspend`))).body).toMatchObject({ status: 'suspended' });
    const before = await resumeEvents();
    const clients = Array.from({ length: 20 }, connect);
    const results = await Promise.all(
      clients.map(async (c) => {
        await c.connect();
        const res = await c.query('SELECT 1 AS one');
        await c.end();
        return res.rows[0].one;
      }),
    );
    expect(results).toEqual(Array(20).fill(1));
    expect((await resumeEvents()) - before).toBe(1);
  });

  it('gives the client a clear error, not a hang, when the resume fails', async () => {
    const b = (await t.request('POST', path('/branches'), { body: { name: 'broken-resume' } })).body;
    expect((await t.request('POST', path(`/endpoints/${b.compute_id}/suspend`))).status).toBe(200);
    // Postgres refuses to start a data dir without PG_VERSION.
    const versionFile = `${t.stack.engine.layout.branchDataDir(b.id)}/PG_VERSION`;
    fs.renameSync(versionFile, `${versionFile}.hidden`);
    const r = await psql(b.connection_string, 'SELECT 1');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/could not resume endpoint/);
    fs.renameSync(`${versionFile}.hidden`, versionFile);
    expect((await psql(b.connection_string, 'SELECT 1')).stdout.trim()).toBe('1');
    expect((await t.request('DELETE', path(`/branches/${b.id}`))).status).toBe(204);
  });

  it('does not wake a compute whose branch is being reset, and says so', async () => {
    const b = (await t.request('POST', path('/branches'), { body: { name: 'mid-reset' } })).body;
    expect((await t.request('POST', path(`/endpoints/${b.compute_id}/suspend`))).status).toBe(200);
    // What a reset in flight looks like to the proxy: the branch marked, its data dir not to be touched.
    await t.stack.db.updateTable('branches').set({ status: 'resetting' }).where('id', '=', b.id).execute();
    const r = await psql(b.connection_string, 'SELECT 1');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/its branch is resetting/);
    expect(await t.stack.engine.endpointRunning({ branchId: b.id })).toBe(false);
    await t.stack.db.updateTable('branches').set({ status: 'ready' }).where('id', '=', b.id).execute();
    expect((await psql(b.connection_string, 'SELECT 1')).stdout.trim()).toBe('1');
    expect((await t.request('DELETE', path(`/branches/${b.id}`))).status).toBe(204);
  });

  it('enforces the allowlist in the proxy, naming the client address', async () => {
    const bad = await t.request('PUT', path(`${ep()}/allowlist`), { body: { allowlist: ['10.0.0.0/8', 'not-an-ip'] } });
    expect(bad.status).toBe(422);
    expect(bad.body.error.details.fields[0].field).toBe('body.allowlist.1');
    expect((await t.request('GET', path(`${ep()}/allowlist`))).body).toEqual([]);

    const deny = await t.request('PUT', path(`${ep()}/allowlist`), { body: { allowlist: ['10.0.0.0/8', '2001:db8::/32'] } });
    expect(deny.body).toEqual(['10.0.0.0/8', '2001:db8::/32']);
    const refused = await psql(project.connection_string, 'SELECT 1');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/client address 127\.0\.0\.1 is not allowed by the IP allowlist/);

    await t.request('PUT', path(`${ep()}/allowlist`), { body: { allowlist: ['10.0.0.0/8', '127.0.0.0/8'] } });
    expect((await psql(project.connection_string, 'SELECT 1')).stdout.trim()).toBe('1');
    await t.request('PUT', path(`${ep()}/allowlist`), { body: { allowlist: [] } });
  });

  it('resizes the compute: Postgres settings and, where the host allows, cgroup limits', async () => {
    const bad = await t.request('PATCH', path(ep()), { body: { compute_cu: 0.3 } });
    expect(bad.status).toBe(422);
    const res = await t.request('PATCH', path(ep()), { body: { compute_cu: 1, auto_suspend_seconds: 600 } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ compute_cu: 1, auto_suspend_seconds: 600 });
    expect(typeof res.body.limits_enforced).toBe('boolean');
    expect((await psql(project.connection_string, 'SHOW work_mem')).stdout.trim()).not.toBe('4MB');
    const range = await t.request('PATCH', path(ep()), { body: { min_cu: 2, max_cu: 1 } });
    expect(range.status).toBe(422);
    const auto = await t.request('PATCH', path(ep()), { body: { min_cu: 0.5, max_cu: 2 } });
    expect(auto.body).toMatchObject({ min_cu: 0.5, max_cu: 2, compute_cu: 1 });
    const history = await t.stack.db.selectFrom('compute_events').selectAll().where('endpoint_id', '=', project.endpoint_id).where('event', '=', 'resize').execute();
    expect(history.length).toBe(1);
  });

  it('auto-suspends an idle compute from its schedule, but not one with a client', async () => {
    await t.request('PATCH', path(ep()), { body: { auto_suspend_seconds: 1 } });
    await t.stack.db.updateTable('endpoints').set({ last_active_at: sql`now() - interval '1 minute'` }).where('id', '=', project.endpoint_id).execute();
    const held = connect();
    await held.connect();
    const sweep = t.stack.temporal.schedule.getHandle(`${t.env.LAMPION_TASK_QUEUE}-auto-suspend`);
    await runScheduleOnce(t, sweep);
    expect((await t.request('GET', path(ep()))).body.status).toBe('running');
    await held.end();
    // The proxy records activity when a session ends; let it, then age the endpoint.
    await waitFor(async () => t.stack.proxy!.activeConnections === 0);
    await new Promise((r) => setTimeout(r, 200));

    await t.stack.db.updateTable('endpoints').set({ last_active_at: sql`now() - interval '1 minute'` }).where('id', '=', project.endpoint_id).execute();
    await runScheduleOnce(t, sweep);
    await waitFor(async () => (await t.request('GET', path(ep()))).body.status === 'suspended');
    const events = await t.stack.db.selectFrom('compute_events').select(['event', 'duration_s']).where('endpoint_id', '=', project.endpoint_id).orderBy('id').execute();
    expect(events.at(-1)).toMatchObject({ event: 'suspend' });
    expect(events.at(-1)!.duration_s).toBeGreaterThan(0);
    const history = await t.request('GET', path('/metrics/compute-history'));
    expect(history.body[0]).toMatchObject({ event: 'suspend', endpoint_id: project.endpoint_id });
    expect(history.body.map((e: any) => e.event)).toEqual(expect.arrayContaining(['start', 'suspend', 'resume', 'resize']));
    // The platform's own action is in the audit log, as the platform.
    const audit = await t.request('GET', '/v1/orgs/audit-log?limit=100');
    expect(audit.body).toEqual(expect.arrayContaining([expect.objectContaining({ actor: 'platform', action: 'endpoint.auto-suspend', target: project.endpoint_id, outcome: 'started' })]));
    await t.request('PATCH', path(ep()), { body: { auto_suspend_seconds: 0 } });
  });

  it('autoscales a busy compute one tier up within its bounds, recorded in compute history', async () => {
    const b = (await t.request('POST', path('/branches'), { body: { name: 'busy' } })).body;
    const epPath = path(`/endpoints/${b.compute_id}`);
    const set = await t.request('PATCH', epPath, { body: { compute_cu: 0.25, min_cu: 0.25, max_cu: 1 } });
    expect(set.status).toBe(200);
    const sweep = t.stack.temporal.schedule.getHandle(`${t.env.LAMPION_TASK_QUEUE}-autoscale`);
    await runScheduleOnce(t, sweep); // first CPU sample
    const load = psql(b.connection_string, 'SELECT count(*) FROM generate_series(1, 40000000)');
    await new Promise((r) => setTimeout(r, 2500));
    await runScheduleOnce(t, sweep);
    await load;
    const after = (await t.request('GET', epPath)).body;
    const resizes = (await t.request('GET', path('/metrics/compute-history'))).body.filter(
      (e: any) => e.endpoint_id === b.compute_id && e.event === 'resize' && e.detail?.reason === 'autoscale',
    );
    if (set.body.limits_enforced) {
      expect(after.compute_cu).toBe(0.5);
      expect(resizes).toEqual([expect.objectContaining({ detail: { reason: 'autoscale', from_cu: 0.25, to_cu: 0.5 } })]);
    } else {
      // Without cgroups there is no CPU measurement: the API says so and nothing moves.
      expect(after.compute_cu).toBe(0.25);
      expect(resizes).toEqual([]);
    }
    expect((await t.request('DELETE', path(`/branches/${b.id}`))).status).toBe(204);
  });

  it('expires unprotected branches past their TTL from the schedule; protected ones stay', async () => {
    const a = (await t.request('POST', path('/branches'), { body: { name: 'short-lived' } })).body;
    const b = (await t.request('POST', path('/branches'), { body: { name: 'kept' } })).body;
    const parent = (await t.request('POST', path('/branches'), { body: { name: 'expired-parent' } })).body;
    const kid = (await t.request('POST', path('/branches'), { body: { name: 'kid', parent_id: parent.id } })).body;
    await t.request('PATCH', path(`/branches/${a.id}`), { body: { ttl_hours: 1 } });
    await t.request('PATCH', path(`/branches/${b.id}`), { body: { ttl_hours: 1, protected: true } });
    await t.request('PATCH', path(`/branches/${parent.id}`), { body: { ttl_hours: 1 } });
    await t.stack.db.updateTable('branches').set({ expires_at: sql`now() - interval '1 second'` }).where('id', 'in', [a.id, b.id, parent.id]).execute();
    await runScheduleOnce(t, t.stack.temporal.schedule.getHandle(`${t.env.LAMPION_TASK_QUEUE}-branch-ttl`));
    await waitFor(async () => (await t.request('GET', path(`/branches/${a.id}`))).status === 404);
    expect((await t.request('GET', path(`/branches/${b.id}`))).body).toMatchObject({ name: 'kept', protected: true });
    const audit = await t.request('GET', '/v1/orgs/audit-log?limit=100');
    expect(audit.body).toEqual(expect.arrayContaining([expect.objectContaining({ actor: 'platform', action: 'branch.expire', target: a.id, outcome: 'started' })]));
    // A parent waits for its children to go before it expires.
    expect((await t.request('GET', path(`/branches/${parent.id}`))).body).toMatchObject({ name: 'expired-parent', status: 'ready' });
    expect((await t.request('DELETE', path(`/branches/${kid.id}`))).status).toBe(204);
  });
});


