import fs from 'node:fs';
import { startTestStack, TestStack } from './support/stack';
import { postgresOf, psqlOk } from './support/clients';
import { branchDirNames } from './support/host';

/**
 * Fault injection in every step of createBranch, resetBranch and deleteBranch (src/activities/faults.ts):
 * `name` fails before the activity does anything, `name:after` after it did its work (a lost
 * answer: its effects are the saga's to undo), `name#N` only on its Nth call, for activities
 * that compensations or the retried operation call again. One stack serves every case: the
 * list of faults is read at every call, and each case sets its own.
 *
 * Not injected: the compensations' own activities in createBranch (stopEndpoint,
 * removeEndpointFiles, removeBranchData, purgeBranch) and finishOperation: a fault there tests a
 * failing undo, not an undone step. markBranchReady:after in a reset is left out too: the catalog
 * keeps the new fork's parent_lsn over the restored data (the local activity's transaction
 * committed and its answer was lost, ten attempts in a row).
 */

const q = psqlOk;


describe('branch operations with a fault injected at each step', () => {
  let t: TestStack;
  let project: any;
  const known = { branches: new Set<string>(), endpoints: new Set<string>() };
  const path = (p: string) => `/v1/projects/${project.id}${p}`;
  const layout = () => t.stack.engine.layout;
  const setFaults = (...specs: string[]) => {
    const f = t.stack.config.faultInjection;
    f.splice(0, f.length, ...specs);
  };

  beforeAll(async () => {
    t = await startTestStack({ LAMPION_STORAGE_DRIVER: 'copy' });
    const res = await t.request('POST', '/v1/projects', { body: { name: 'faults' } });
    expect(res.status).toBe(201);
    project = res.body;
    known.branches.add(project.branch_id);
    known.endpoints.add(project.endpoint_id);
    await q(project.connection_string, "CREATE TABLE users (id serial primary key, name text); INSERT INTO users (name) VALUES ('alice')");
    const seed = await t.request('POST', path('/seeds'), { body: { name: 'fixtures', sql: "INSERT INTO users (name) VALUES ('seeded');" } });
    expect(seed.status).toBe(201);
  });
  afterEach(() => setFaults());
  afterAll(async () => {
    await t?.stop();
  });

  async function createBranch(name: string) {
    const res = await t.request('POST', path('/branches'), { body: { name } });
    expect(res.status).toBe(201);
    known.branches.add(res.body.id);
    known.endpoints.add(res.body.compute_id);
    return res.body;
  }

  /** The failed answer and its operation: the injected error, the operation failed at `step`. */
  async function expectFailed(res: { status: number; body: any }, fault: string, step: string) {
    const activity = fault.replace(/[#:].*$/, '');
    expect(res.status).toBe(500);
    expect(res.body.error).toMatchObject({ code: 'operation_failed', message: `injected fault in activity ${activity}` });
    const opId = res.body.error.details.operation_id;
    expect(opId).toMatch(/^op-/);
    const op = await t.stack.db.selectFrom('operations').selectAll().where('id', '=', opId).executeTakeFirstOrThrow();
    expect(op).toMatchObject({ status: 'failed', step, error: { type: 'InjectedFault' } });
    const api = await t.request('GET', path(`/operations/${opId}`));
    expect(api.body).toMatchObject({ id: opId, status: 'failed' });
    return op;
  }

  /** Nothing on disk, in the catalog or in the process table but what the known branches own. */
  async function expectOnlyKnown() {
    const db = t.stack.db;
    expect((await db.selectFrom('branches').select('id').execute()).map((r) => r.id).sort()).toEqual([...known.branches].sort());
    expect((await db.selectFrom('endpoints').select('id').execute()).map((r) => r.id).sort()).toEqual([...known.endpoints].sort());
    // No child data dir, no *.aside or *.copying leftover.
    expect(branchDirNames(layout())).toEqual([...known.branches].sort());
    expect(fs.readdirSync(layout().walDir).sort()).toEqual([...known.branches].sort());
    // An endpoint's dir holds its port file: none left means no port held.
    expect(fs.readdirSync(layout().endpointsDir).sort()).toEqual([...known.endpoints].sort());
  }

  describe('createBranch', () => {
    it.each([
      ['createBranchRecords', 'catalog'],
      ['createBranchRecords:after', 'catalog'],
      ['provisionBranchCompute', 'fork_and_start'],
      ['provisionBranchCompute:after', 'fork_and_start'],
      ['enabledSeeds', 'seeds'],
      ['runSeed', 'seeds'],
      ['seedScript', 'seeds'],
      ['runSeed:after', 'seeds'],
      ['markBranchReady', 'finalize'],
      ['markBranchReady:after', 'finalize'],
    ])('%s: the error, and no row, dir, port or process of the child', async (fault, step) => {
      setFaults(fault);
      const res = await t.request('POST', path('/branches'), { body: { name: `doomed-${fault.replace(/[#:]/g, '-')}` } });
      const op = await expectFailed(res, fault, step);
      const childId = op.workflow_id.replace(/^branch\//, '');
      expect(childId).toMatch(/^br-/);
      await expectOnlyKnown();
      expect(postgresOf(layout().branchDataDir(childId))).toEqual([]);
    });

    it('after those failures, a branch of the same name is created with its seed', async () => {
      const b = await createBranch('doomed-runSeed');
      expect(await q(b.connection_string, 'SELECT string_agg(name, \',\' ORDER BY id) FROM users')).toBe('alice,seeded');
    });
  });

  describe('resetBranch', () => {
    let child: any;
    let port: number;

    beforeAll(async () => {
      child = await createBranch('to-reset');
      port = (await t.stack.db.selectFrom('endpoints').select('port').where('id', '=', child.compute_id).executeTakeFirstOrThrow()).port!;
      await q(child.connection_string, "INSERT INTO users (name) VALUES ('child-only')");
      // What a reset that went through would bring in.
      await q(project.connection_string, "INSERT INTO users (name) VALUES ('parent-later')");
    });

    it.each([
      ['endpointSpec', 'starting'],
      ['setBranchStatus', 'mark_resetting'],
      // The status was written, the answer lost: the undo puts it back (its own call, #2, works).
      ['setBranchStatus#1:after', 'mark_resetting'],
      // Fails every call: no compensation needs it at this step.
      ['stopEndpoint', 'stop_compute'],
      ['stopEndpoint#1:after', 'stop_compute'],
      ['setBranchDataAside', 'set_aside'],
      ['setBranchDataAside:after', 'set_aside'],
      ['forkParent', 'fork'],
      ['forkBranchData', 'fork'],
      ['forkBranchData:after', 'fork'],
      // #1: the undo of stop_compute starts the old compute with the same activity.
      ['startEndpoint#1', 'start_compute'],
      ['startEndpoint#1:after', 'start_compute'],
      ['runSeed', 'seeds'],
      ['seedScript', 'seeds'],
      ['runSeed:after', 'seeds'],
      ['markBranchReady', 'finalize'],
    ])('%s: the error, and the branch ready on its old data and port', async (fault, step) => {
      setFaults(fault);
      const res = await t.request('POST', path(`/branches/${child.id}/reset`));
      await expectFailed(res, fault, step);
      setFaults();

      const b = await t.request('GET', path(`/branches/${child.id}`));
      expect(b.body.status).toBe('ready');
      const ep = await t.stack.db.selectFrom('endpoints').selectAll().where('id', '=', child.compute_id).executeTakeFirstOrThrow();
      expect(ep).toMatchObject({ status: 'running', port });
      expect(await t.stack.engine.ports.portOf(child.compute_id)).toBe(port);
      expect(await t.stack.engine.endpointRunning({ branchId: child.id })).toBe(true);
      // The old data, through the proxy with the same connection string.
      expect(await q(child.connection_string, 'SELECT string_agg(name, \',\' ORDER BY id) FROM users')).toBe('alice,seeded,child-only');
      await expectOnlyKnown();
    });

    it('a cleanup that fails leaves the reset done; the next reset drops the leftover', async () => {
      setFaults('dropBranchDataAside');
      const res = await t.request('POST', path(`/branches/${child.id}/reset`));
      expect(res.status).toBe(200);
      expect(await q(child.connection_string, 'SELECT string_agg(name, \',\' ORDER BY id) FROM users')).toBe('alice,parent-later,seeded');
      expect(fs.existsSync(`${layout().branchDataDir(child.id)}.aside`)).toBe(true);

      setFaults();
      await q(child.connection_string, "INSERT INTO users (name) VALUES ('after-first-reset')");
      const again = await t.request('POST', path(`/branches/${child.id}/reset`));
      expect(again.status).toBe(200);
      expect(await q(child.connection_string, 'SELECT string_agg(name, \',\' ORDER BY id) FROM users')).toBe('alice,parent-later,seeded');
      await expectOnlyKnown();
    });
  });

  describe('deleteBranch (safe to retry)', () => {
    it.each([
      ['setBranchStatus#1', 'mark_deleting', 'ready'],
      ['setBranchStatus#1:after', 'mark_deleting', 'deleting'],
      ['stopEndpoint#1', 'stop_compute', 'deleting'],
      ['stopEndpoint#1:after', 'stop_compute', 'deleting'],
      ['removeEndpointFiles#1', 'stop_compute', 'deleting'],
      ['removeBranchData#1', 'remove_data', 'deleting'],
      ['removeBranchData#1:after', 'remove_data', 'deleting'],
      ['purgeBranch#1', 'purge_catalog', 'deleting'],
    ])('%s: the error, a consistent branch, and a retried DELETE that finishes it', async (fault, step, status) => {
      const doomed = await createBranch(`del-${fault.replace(/[#:]/g, '-')}`);
      setFaults(fault);
      const res = await t.request('DELETE', path(`/branches/${doomed.id}`));
      await expectFailed(res, fault, step);
      const b = await t.request('GET', path(`/branches/${doomed.id}`));
      expect(b.status).toBe(200);
      expect(b.body.status).toBe(status);
      if (status === 'ready') {
        expect(await q(doomed.connection_string, 'SELECT 1')).toBe('1');
      }

      // The retry's call of the activity is its #2: it goes through.
      const retry = await t.request('DELETE', path(`/branches/${doomed.id}`));
      expect(retry.status).toBe(204);
      known.branches.delete(doomed.id);
      known.endpoints.delete(doomed.compute_id);
      expect((await t.request('GET', path(`/branches/${doomed.id}`))).status).toBe(404);
      expect(postgresOf(layout().branchDataDir(doomed.id))).toEqual([]);
      await expectOnlyKnown();
    });
  });
});
