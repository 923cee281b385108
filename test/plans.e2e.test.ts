import { startTestStack, TestStack } from './support/stack';

describe('plans', () => {
  let t: TestStack;
  beforeAll(async () => {
    // The deployment's organization on free (it is on pro unless configured).
    t = await startTestStack({ LAMPION_DEFAULT_ORG_PLAN: 'free' });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('lists free (3 projects), dev and pro, marking the organization\'s', async () => {
    const r = await t.request('GET', '/v1/plans');
    expect(r.status).toBe(200);
    expect(r.body.map((p: any) => p.name)).toEqual(['free', 'dev', 'pro']);
    expect(r.body[0]).toMatchObject({ name: 'free', max_projects: 3, current: true });
    expect(r.body.filter((p: any) => p.current)).toHaveLength(1);
  });

  it('refuses a fourth project on free with a clear 403 naming the limit, also when three are asked at once', async () => {
    const three = await Promise.all([1, 2, 3].map((i) => t.request('POST', '/v1/projects', { body: { name: `p${i}` } })));
    expect(three.map((r) => r.status)).toEqual([201, 201, 201]);
    const fourth = await t.request('POST', '/v1/projects', { body: { name: 'p4' } });
    expect(fourth.status).toBe(403);
    expect(fourth.body.error).toMatchObject({ code: 'plan_limit_exceeded', message: expect.stringContaining('max_projects'), details: { limit: 'max_projects' } });
    expect((await t.request('GET', '/v1/projects')).body).toHaveLength(3);
    // A deleted one frees its slot.
    const del = await t.request('DELETE', `/v1/projects/${three[0].body.id}`);
    expect([200, 202, 204]).toContain(del.status);
    const again = await t.request('POST', '/v1/projects', { body: { name: 'p5' } });
    expect(again.status).toBe(201);
  });
});
