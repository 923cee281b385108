import { startTestStack, TestStack } from './support/stack';
import { consoleOf } from './support/console';

describe('slow queries and logs', () => {
  let t: TestStack;
  let project: any;
  let other: any;
  let c: ReturnType<typeof consoleOf>;
  const ep = () => `/v1/projects/${project.id}/endpoints/${project.endpoint_id}`;

  beforeAll(async () => {
    t = await startTestStack();
    project = (await t.request('POST', '/v1/projects', { body: { name: 'analyse' } })).body;
    other = (await t.request('POST', '/v1/projects', { body: { name: 'analyse-other' } })).body;
    c = consoleOf(t, project);
    await c.sql('CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 20000) g');
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('ranks a workload by total time, mean time and calls, with cache hit ratios, and resets', async () => {
    for (let i = 0; i < 5; i++) await c.sql("SELECT count(*) FROM items WHERE v LIKE '%ab%'");
    for (let i = 0; i < 20; i++) await c.sql(`SELECT v FROM items WHERE id = ${i + 1}`);
    const byTotal = await c.req('GET', '/analyse/slow-queries?order_by=total_time&limit=5');
    expect(byTotal.status).toBe(200);
    const scan = byTotal.body.find((q: any) => q.query.includes('LIKE'));
    expect(scan).toMatchObject({ calls: 5, database: 'postgres', role: 'cloud_admin' });
    expect(scan.cache_hit_pct).toBeGreaterThan(0);
    expect(scan.cache_hit_pct).toBeLessThanOrEqual(100);
    const byCalls = await c.req('GET', '/analyse/slow-queries?order_by=calls&limit=3');
    const point = byCalls.body.find((q: any) => q.query.includes('WHERE id = $1'));
    expect(point.calls).toBe(20);
    const times = (await c.req('GET', '/analyse/slow-queries?order_by=mean_time&limit=50')).body.map((q: any) => q.mean_time_ms);
    expect(times).toEqual([...times].sort((a: number, b: number) => b - a));
    expect(byTotal.body.every((q: any) => q.role !== 'lampion_system')).toBe(true);
    expect((await c.req('GET', '/analyse/slow-queries?order_by=rows')).status).toBe(422);
    expect((await c.req('GET', '/analyse/slow-queries?limit=0')).status).toBe(422);

    const reset = await c.req('POST', '/analyse/reset-stats');
    expect(reset.body).toEqual({ ok: true });
    const after = await c.req('GET', '/analyse/slow-queries?order_by=calls&limit=100');
    expect(after.body.some((q: any) => q.query.includes('LIKE'))).toBe(false);
  });

  it('keeps the statistics across a suspend and resume (a clean stop saves them)', async () => {
    for (let i = 0; i < 3; i++) await c.sql('SELECT sum(length(v)) FROM items WHERE id % 7 = 0');
    expect((await t.request('POST', `${ep()}/suspend`)).status).toBe(200);
    // The read wakes the compute; its numbers are the ones from before the stop.
    const r = await c.req('GET', '/analyse/slow-queries?order_by=calls&limit=100');
    expect(r.status).toBe(200);
    expect(r.body.find((q: any) => q.query.includes('id % $1'))).toMatchObject({ calls: 3 });
  });

  it("tails the compute's own log, also while suspended, capped at 5000 lines", async () => {
    await c.sql("DO $$ BEGIN RAISE LOG 'lampion-log-marker-%', 42; END $$");
    const live = await c.req('GET', '/logs?lines=50');
    expect(live.status).toBe(200);
    expect(live.body.count).toBe(live.body.lines.length);
    expect(live.body.lines.length).toBeLessThanOrEqual(50);
    expect(live.body.lines.some((l: string) => l.includes('lampion-log-marker-42'))).toBe(true);
    expect((await t.request('POST', `${ep()}/suspend`)).status).toBe(200);
    const suspended = await c.req('GET', '/logs');
    expect(suspended.status).toBe(200);
    expect(suspended.body.lines.some((l: string) => /shutting down|database system is shut down/.test(l))).toBe(true);
    expect((await t.request('GET', `${ep()}`)).body.status).toBe('suspended');
    expect((await c.req('GET', '/logs?lines=2')).body.count).toBe(2);
    expect((await c.req('GET', '/logs?lines=5001')).status).toBe(422);
    // Another project's compute logs nothing of this one's.
    const theirs = await t.request('GET', `/v1/projects/${other.id}/endpoints/${other.endpoint_id}/logs?lines=5000`);
    expect(theirs.body.lines.some((l: string) => l.includes('lampion-log-marker'))).toBe(false);
  });
});
