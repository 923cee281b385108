import { startTestStack, TestStack } from './support/stack';
import { consoleOf } from './support/console';
import { runScheduleOnce, waitFor } from './support/schedules';

describe('metrics', () => {
  let t: TestStack;
  let project: any;
  let c: ReturnType<typeof consoleOf>;
  const base = () => `/v1/projects/${project.id}/metrics`;
  const tick = () => runScheduleOnce(t, t.stack.temporal.schedule.getHandle(t.stack.schedules.find((s) => s.id.endsWith('-metrics'))!.id));

  beforeAll(async () => {
    t = await startTestStack();
    project = (await t.request('POST', '/v1/projects', { body: { name: 'metrics' } })).body;
    c = consoleOf(t, project);
    await c.sql("CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g");
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('measures a running compute: sessions, cache hits, storage, and its cgroup where limits are enforced', async () => {
    const r = await t.request('GET', base());
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ endpoint_id: project.endpoint_id, compute_status: 'running' });
    expect(r.body.connections_total).toBeGreaterThanOrEqual(1); // the executor's pooled session
    expect(r.body.cache_hit_ratio).toBeGreaterThan(50);
    expect(r.body.storage_logical_mb).toBeGreaterThan(5);
    expect(r.body.storage_data_dir_mb).toBeGreaterThan(r.body.storage_logical_mb);
    if (r.body.limits_enforced) {
      expect(r.body.compute_cpu_seconds).toBeGreaterThan(0);
      expect(r.body.memory_mb).toBeGreaterThan(1);
    } else {
      expect(r.body.compute_cpu_seconds).toBeNull();
    }
  });

  it('gains a history row per Schedule tick, with the numbers of that moment', async () => {
    const before = (await t.request('GET', `${base()}/history?hours=1`)).body.length;
    await tick();
    await c.sql("INSERT INTO items SELECT g, repeat('y', 500) FROM generate_series(20001, 60000) g");
    await tick();
    const rows = (await t.request('GET', `${base()}/history?hours=1`)).body;
    expect(rows.length).toBe(before + 2);
    expect(rows[0].snapshot_at > rows[1].snapshot_at).toBe(true);
    expect(rows[0]).toMatchObject({ endpoint_id: project.endpoint_id });
    expect(rows[0].storage_logical_mb).toBeGreaterThan(rows[1].storage_logical_mb);
    expect((await t.request('GET', `${base()}/history?hours=25`)).status).toBe(422);
  });

  it('says so for a suspended compute, and still reports storage', async () => {
    expect((await t.request('POST', `/v1/projects/${project.id}/endpoints/${project.endpoint_id}/suspend`)).status).toBe(200);
    const r = await t.request('GET', base());
    expect(r.body).toMatchObject({ compute_status: 'suspended', connections_total: 0, cache_hit_ratio: null });
    expect(r.body.storage_data_dir_mb).toBeGreaterThan(5);
    expect(r.body.storage_logical_mb).toBeGreaterThan(5);
    expect(typeof r.body.storage_logical_measured_at).toBe('string');
    expect((await t.request('GET', `/v1/projects/${project.id}/endpoints/${project.endpoint_id}`)).body.status).toBe('suspended');
  });

  it('vacuum statistics per table', async () => {
    // The deleting session flushes its statistics when it next goes idle (within a second).
    await c.sql('DELETE FROM items WHERE id % 2 = 0; SELECT pg_stat_force_next_flush()');
    let items: any;
    await waitFor(async () => {
      const r = await t.request('GET', `${base()}/vacuum`);
      expect(r.status).toBe(200);
      items = r.body.find((x: any) => x.table === 'items');
      return items?.dead_tuples > 0;
    });
    expect(items).toMatchObject({ schema: 'public' });
    await c.sql('VACUUM items');
    const after = (await t.request('GET', `${base()}/vacuum`)).body.find((x: any) => x.table === 'items');
    expect(after.vacuum_count).toBeGreaterThanOrEqual(1);
    expect(typeof after.last_vacuum).toBe('string');
  });
});
