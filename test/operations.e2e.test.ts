import { startTestStack, TestStack } from './support/stack';
import { psql } from './support/clients';

/** With no wait allowed, every long operation answers 202 and is followed through its operation. */
describe('long operations past the API wait', () => {
  let t: TestStack;

  beforeAll(async () => {
    t = await startTestStack({ LAMPION_API_WAIT_MS: '0' });
  });
  afterAll(async () => {
    await t?.stop();
  });

  async function follow(location: string): Promise<any> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const op = await t.request('GET', location);
      expect(op.status).toBe(200);
      if (op.body.status !== 'running') return op.body;
      if (Date.now() > deadline) throw new Error(`operation still running: ${JSON.stringify(op.body)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('answers 202 with the operation in Location, which reports the step and then the result', async () => {
    const res = await t.request('POST', '/v1/projects', { body: { name: 'slow' } });
    expect(res.status).toBe(202);
    const { operation_id, project_id } = res.body;
    expect(res.body).toMatchObject({ status: 'running', operation_id: expect.stringMatching(/^op-/), project_id: expect.stringMatching(/^prj-/) });
    const location = res.headers.get('location')!;
    expect(location).toBe(`/v1/projects/${project_id}/operations/${operation_id}`);
    const other = await t.key('owner', { orgId: 'org-elsewhere' });
    expect((await t.request('GET', location, { key: other })).status).toBe(404);
    const done = await follow(location);
    expect(done).toMatchObject({ kind: 'project.create', status: 'succeeded', step: 'done' });

    const ep = (await t.request('GET', `/v1/projects/${project_id}/endpoints/${done.result.endpointId}`)).body;
    expect((await psql(ep.connection_string, 'SELECT 1')).stdout.trim()).toBe('1');

    const branch = await t.request('POST', `/v1/projects/${project_id}/branches`, { body: { name: 'later' } });
    expect(branch.status).toBe(202);
    expect(branch.headers.get('location')).toBe(`/v1/projects/${project_id}/operations/${branch.body.operation_id}`);
    expect(await follow(branch.headers.get('location')!)).toMatchObject({ kind: 'branch.create', status: 'succeeded' });
    expect((await t.request('GET', `/v1/projects/${project_id}/branches/${branch.body.branch_id}`)).body.status).toBe('ready');
  });
});
