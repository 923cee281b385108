import fs from 'node:fs';
import { startTestStack, TestStack } from './support/stack';
import { branchDirNames, postgresUnder } from './support/host';

/** Any postgres process whose command line mentions this stack's data dir. */
describe.each(['startEndpoint', 'bootstrapEndpoint', 'markProjectReady'])('createProject with a fault injected in %s', (fault) => {
  let t: TestStack;

  beforeAll(async () => {
    t = await startTestStack({ LAMPION_FAULT_INJECTION: fault });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('answers with the error and leaves no process, data dir, port or catalog row behind', async () => {
    const res = await t.request('POST', '/v1/projects', { body: { name: 'doomed' } });
    expect(res.status).toBe(500);
    expect(res.body.error).toMatchObject({ code: 'operation_failed', message: `injected fault in activity ${fault}` });
    const opId = res.body.error.details.operation_id;

    const db = t.stack.db;
    expect(await db.selectFrom('projects').selectAll().execute()).toEqual([]);
    expect(await db.selectFrom('branches').selectAll().execute()).toEqual([]);
    expect(await db.selectFrom('endpoints').selectAll().execute()).toEqual([]);
    const op = await db.selectFrom('operations').selectAll().where('id', '=', opId).executeTakeFirstOrThrow();
    expect(op).toMatchObject({ status: 'failed', error: { type: 'InjectedFault' } });

    expect(branchDirNames(t.stack.engine.layout)).toEqual([]);
    expect(fs.readdirSync(t.stack.engine.layout.endpointsDir)).toEqual([]);
    expect(postgresUnder(t.dataDir)).toEqual([]);
  });
});
