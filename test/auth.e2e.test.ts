import { startTestStack, TestStack } from './support/stack';

describe('API auth, RBAC and error envelope', () => {
  let t: TestStack;
  let projectId: string;

  beforeAll(async () => {
    t = await startTestStack();
    const res = await t.request('POST', '/v1/projects', { body: { name: 'auth-target' } });
    expect(res.status).toBe(201);
    projectId = res.body.id;
  });
  afterAll(async () => {
    await t?.stop();
  });

  const envelope = (body: any, code: string) => {
    expect(body).toEqual({ error: expect.objectContaining({ code, message: expect.any(String) }) });
  };

  it('answers 401 for a missing, malformed, unknown or expired key', async () => {
    const missing = await t.request('GET', '/v1/projects', { key: null });
    expect(missing.status).toBe(401);
    envelope(missing.body, 'unauthorized');
    expect((await t.request('GET', '/v1/projects', { key: 'nope' })).status).toBe(401);
    expect((await t.request('GET', '/v1/projects', { key: `lmp_live_${'A'.repeat(32)}` })).status).toBe(401);
    const expired = await t.request('GET', '/v1/projects', { key: await t.key('owner', { expired: true }) });
    expect(expired.status).toBe(401);
    expect(expired.body.error.message).toMatch(/expired/);
  });

  it('answers 403 when the role is below the policy, and lets a viewer read', async () => {
    const viewer = await t.key('viewer');
    const create = await t.request('POST', '/v1/projects', { key: viewer, body: { name: 'nope' } });
    expect(create.status).toBe(403);
    envelope(create.body, 'forbidden');
    expect((await t.request('GET', `/v1/projects/${projectId}`, { key: viewer })).status).toBe(200);
    const developer = await t.key('developer');
    expect((await t.request('DELETE', `/v1/projects/${projectId}`, { key: developer })).status).toBe(403);
    const analyst = await t.key('analyst');
    expect((await t.request('GET', '/v1/projects', { key: analyst })).status).toBe(403);
  });

  it('hides another organization’s project behind 404', async () => {
    const other = await t.key('owner', { orgId: 'org-other' });
    const res = await t.request('GET', `/v1/projects/${projectId}`, { key: other });
    expect(res.status).toBe(404);
    envelope(res.body, 'not_found');
    expect((await t.request('PATCH', `/v1/projects/${projectId}`, { key: other, body: { name: 'x' } })).status).toBe(404);
    expect((await t.request('DELETE', `/v1/projects/${projectId}`, { key: other })).status).toBe(404);
    const list = await t.request('GET', '/v1/projects', { key: other });
    expect(list.body).toEqual([]);
  });

  it('answers 400 for malformed JSON and 422 naming the field for an invalid body, changing nothing', async () => {
    const before = (await t.request('GET', '/v1/projects')).body.length;
    const malformed = await t.request('POST', '/v1/projects', { raw: '{"name": ' });
    expect(malformed.status).toBe(400);
    envelope(malformed.body, 'malformed_json');
    const invalid = await t.request('POST', '/v1/projects', { body: { name: 42 } });
    expect(invalid.status).toBe(422);
    expect(invalid.body.error.details.fields[0]).toMatchObject({ field: 'body.name' });
    const unknown = await t.request('POST', '/v1/projects', { body: { name: 'ok', colour: 'red' } });
    expect(unknown.status).toBe(422);
    const badId = await t.request('GET', '/v1/projects/not-an-id');
    expect(badId.status).toBe(422);
    expect(badId.body.error.details.fields[0].field).toBe('path.project_id');
    expect((await t.request('GET', '/v1/projects')).body.length).toBe(before);
  });

  it('answers unknown routes with the envelope and every response with a request id', async () => {
    const res = await t.request('GET', '/v1/nothing-here');
    expect(res.status).toBe(404);
    envelope(res.body, 'not_found');
    expect(res.headers.get('x-request-id')).toMatch(/.+/);
    const method = await t.request('PUT', '/v1/projects');
    expect(method.status).toBe(405);
    envelope(method.body, 'method_not_allowed');
  });
});
