import http from 'node:http';
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
    // An analyst sees only projects with a masked branch (none here), and no endpoint.
    const analyst = await t.key('analyst');
    const listed = await t.request('GET', '/v1/projects', { key: analyst });
    expect(listed.status).toBe(200);
    expect(listed.body).toEqual([]);
    expect((await t.request('GET', `/v1/projects/${projectId}`, { key: analyst })).status).toBe(404);
    expect((await t.request('GET', `/v1/projects/${projectId}/endpoints`, { key: analyst })).status).toBe(403);
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
    // Operations too: a project the org never had is not found, not an empty list.
    expect((await t.request('GET', `/v1/projects/${projectId}/operations`, { key: other })).status).toBe(404);
    expect((await t.request('GET', `/v1/projects/${projectId}/operations`)).status).toBe(200);
  });

  it('refuses control characters and NUL bytes in names with 422, changing nothing', async () => {
    for (const name of ['bad\u0000name', 'tab\tname', 'bell\u0007']) {
      const seed = await t.request('POST', `/v1/projects/${projectId}/seeds`, { body: { name, sql: 'SELECT 1' } });
      expect(seed.status).toBe(422);
      expect(seed.body.error.details.fields[0]).toMatchObject({ field: 'body.name', message: 'must not contain control characters' });
    }
    const nulSql = await t.request('POST', `/v1/projects/${projectId}/seeds`, { body: { name: 'nul', sql: 'SELECT 1\u0000' } });
    expect(nulSql.status).toBe(422);
    expect((await t.request('PATCH', `/v1/projects/${projectId}`, { body: { name: 'x\u0000' } })).status).toBe(422);
    expect((await t.request('POST', `/v1/projects/${projectId}/branches`, { body: { name: 'b\u0000' } })).status).toBe(422);
    expect((await t.request('GET', `/v1/projects/${projectId}/seeds`)).body).toEqual([]);
  });

  it('takes limit and offset as plain decimal integers only, and counts the total', async () => {
    for (const q of ['limit=0', 'limit=0x10', 'limit=101', 'offset=', 'offset=1e3', 'offset=-1', 'limit=%205', 'limit=1.5']) {
      const res = await t.request('GET', `/v1/projects?${q}`);
      expect([q, res.status]).toEqual([q, 422]);
    }
    const page = await t.request('GET', '/v1/projects?limit=1&offset=0');
    expect(page.status).toBe(200);
    expect(page.body).toHaveLength(1);
    expect(Number(page.headers.get('x-total-count'))).toBeGreaterThanOrEqual(1);
    const branches = await t.request('GET', `/v1/projects/${projectId}/branches?limit=10`);
    expect(branches.headers.get('x-total-count')).toBe('1');
  });

  it('refuses an empty PATCH with 422', async () => {
    const res = await t.request('PATCH', `/v1/projects/${projectId}/branches/${(await t.request('GET', `/v1/projects/${projectId}`)).body.branch_id}`, { body: {} });
    expect(res.status).toBe(422);
    expect(res.body.error.message).toMatch(/nothing to update/);
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
    expect(method.headers.get('allow')).toBe('HEAD, GET, POST, OPTIONS');
    // fetch refuses to send TRACE: a raw request.
    const trace = await new Promise<{ status: number; allow?: string }>((resolve, reject) => {
      const req = http.request(`${t.api}/v1/projects/${projectId}`, { method: 'TRACE', headers: { authorization: `Bearer ${t.ownerKey}` } }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, allow: res.headers.allow as string | undefined }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(trace).toEqual({ status: 405, allow: 'HEAD, GET, PATCH, DELETE, OPTIONS' });
    const options = await t.request('OPTIONS', `/v1/projects/${projectId}`);
    expect(options.status).toBe(204);
    expect(options.headers.get('allow')).toContain('PATCH');
  });

  it('documents every error a route can answer in the OpenAPI document', async () => {
    const doc = (await t.request('GET', '/v1/openapi.json', { key: null })).body;
    const create = doc.paths['/v1/projects'].post.responses;
    for (const status of ['400', '401', '403', '409', '413', '422', '429', '503']) expect(Object.keys(create)).toContain(status);
    expect(Object.keys(doc.paths['/v1/projects/{project_id}/branches/{branch_id}/reset'].post.responses)).toContain('409');
    expect(Object.keys(doc.paths['/v1/projects'].get.responses)).not.toContain('413');
  });
});
