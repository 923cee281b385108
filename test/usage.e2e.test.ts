import { Client } from 'pg';
import { startTestStack, TestStack } from './support/stack';
import { waitFor } from './support/schedules';

describe('usage', () => {
  let t: TestStack;
  let project: any;
  const usage = async () => (await t.request('GET', `/v1/projects/${project.id}/usage`)).body;

  beforeAll(async () => {
    t = await startTestStack();
    project = (await t.request('POST', '/v1/projects', { body: { name: 'usage' } })).body;
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('compute hours grow while the compute runs, weighted by its size', async () => {
    const a = await usage();
    expect(a.period).toBe(new Date().toISOString().slice(0, 7));
    expect(a.compute_hours).toBeGreaterThan(0);
    // 0.25 CU: a quarter of the wall-clock hours.
    expect(a.compute_hours).toBeCloseTo(a.compute_wall_hours * 0.25, 4);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await usage()).compute_wall_hours).toBeGreaterThan(a.compute_wall_hours);
  });

  it('counts the bytes relayed by the proxy', async () => {
    const before = (await usage()).transfer_total_gb;
    const client = new Client({ connectionString: project.connection_string.replace(/\?.*$/, ''), ssl: { rejectUnauthorized: false } });
    await client.connect();
    await client.query("SELECT repeat('x', 1000) FROM generate_series(1, 3000)");
    await client.end();
    await waitFor(async () => (await usage()).transfer_total_gb >= before + 0.003, 20_000);
  });

  it('stops counting compute time while suspended', async () => {
    expect((await t.request('POST', `/v1/projects/${project.id}/endpoints/${project.endpoint_id}/suspend`)).status).toBe(200);
    const a = await usage();
    await new Promise((r) => setTimeout(r, 1200));
    expect((await usage()).compute_wall_hours).toBe(a.compute_wall_hours);
  });

  it('sums the organization with its plan and an estimate from the plan\'s prices', async () => {
    const r = await t.request('GET', '/v1/usage');
    expect(r.status).toBe(200);
    expect(r.body.plan).toMatchObject({ name: 'pro', cu_hour_usd: 0.16 });
    expect(r.body.projects.map((p: any) => p.project_id)).toEqual([project.id]);
    expect(r.body.total.compute_hours).toBeCloseTo(r.body.projects[0].compute_hours, 6);
    expect(r.body.estimated_cost.total_usd).toBeCloseTo(r.body.estimated_cost.compute_usd + r.body.estimated_cost.storage_usd + r.body.estimated_cost.transfer_usd, 2);
    expect((await t.request('GET', '/v1/usage?period=2026-13')).status).toBe(422);
    const past = await t.request('GET', `/v1/projects/${project.id}/usage?period=2020-01`);
    expect(past.body).toMatchObject({ period: '2020-01', compute_hours: 0, transfer_total_gb: 0 });
  });
});
