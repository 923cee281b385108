import { Client } from 'pg';
import fs from 'node:fs';
import { startTestStack, TestStack, proxyCaFile } from './support/stack';
import { postmasterPid } from '../src/engine/postmaster';

/** kill -9 of a compute's postmaster: the platform notices and brings it back by itself. */
describe('endpoints: a compute that dies is restarted', () => {
  let t: TestStack;
  let project: any;
  let ca: string;
  const dataDir = () => t.stack.engine.layout.branchDataDir(project.branch_id);
  const query = async (sqlText: string) => {
    const c = new Client({ host: '127.0.0.1', port: project.port, user: 'cloud_admin', password: project.pg_password, database: `${project.endpoint_id}.postgres`, ssl: { ca } });
    await c.connect();
    try {
      return (await c.query(sqlText)).rows;
    } finally {
      await c.end();
    }
  };
  const restarts = async () =>
    (await t.stack.db.selectFrom('compute_events').select('event').where('endpoint_id', '=', project.endpoint_id).where('event', '=', 'restart').execute()).length;
  const waitFor = async (what: string, ok: () => Promise<boolean>, ms = 30_000) => {
    const deadline = Date.now() + ms;
    while (!(await ok())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const kill9 = async () => {
    const pm = await postmasterPid(dataDir());
    expect(pm).toBeDefined();
    process.kill(pm!.pid, 'SIGKILL');
    await waitFor('the postmaster to die', async () => !(await t.stack.engine.endpointRunning({ branchId: project.branch_id })));
    return pm!.pid;
  };

  beforeAll(async () => {
    t = await startTestStack();
    project = (await t.request('POST', '/v1/projects', { body: { name: 'crash' } })).body;
    ca = fs.readFileSync(proxyCaFile(t), 'utf8');
    await query('CREATE TABLE kept (id int); INSERT INTO kept VALUES (1), (2)');
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('the supervisor restarts a killed postmaster with crash recovery, recorded in compute history and in Temporal', async () => {
    const before = await kill9();
    await waitFor('the supervisor to restart it', async () => (await postmasterPid(dataDir()))?.pid !== undefined && (await postmasterPid(dataDir()))!.pid !== before);
    await waitFor('the restart to be recorded', async () => (await restarts()) >= 1);
    expect(await query('SELECT count(*)::int AS n FROM kept')).toEqual([{ n: 2 }]);
    const wf = await t.stack.temporal.workflow.getHandle(`endpoint-state/${project.endpoint_id}`).describe();
    expect(wf.searchAttributes).toMatchObject({ LampionOperation: ['endpoint.restart'], LampionProjectId: [project.id] });
    const api = await t.request('GET', `/v1/projects/${project.id}/endpoints/${project.endpoint_id}`);
    expect(api.body.status).toBe('running');
  });

  it('a client connecting to a dead compute wakes it like a suspended one', async () => {
    await kill9();
    // At once, before the supervisor's next pass could have run.
    expect(await query('SELECT count(*)::int AS n FROM kept')).toEqual([{ n: 2 }]);
    await waitFor('the restart to be recorded', async () => (await restarts()) >= 2);
  });
});
