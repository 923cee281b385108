import fs from 'node:fs';
import { startTestStack, TestStack } from './support/stack';
import { postgresOf, psqlOk } from './support/clients';
import { branchDirNames } from './support/host';

/**
 * Fault injection in the steps of restoreBranch (a new branch at a past point) and
 * restoreBranchInPlace (see src/activities/faults.ts for `name`, `name:after`, `name#N`): a
 * failed restore leaves no half-branch, and a failed in-place restore leaves the branch as it was,
 * on its old data, endpoint and port, with no preserved branch.
 */
const q = psqlOk;


describe('restores with a fault injected at each step', () => {
  let t: TestStack;
  let project: any;
  let backup: any;
  let port: number;
  const known = { branches: new Set<string>(), endpoints: new Set<string>() };
  const path = (p: string) => `/v1/projects/${project.id}${p}`;
  const layout = () => t.stack.engine.layout;
  const setFaults = (...specs: string[]) => {
    const f = t.stack.config.faultInjection;
    f.splice(0, f.length, ...specs);
  };
  const names = (cs: string) => q(cs, "SELECT string_agg(name, ',' ORDER BY id) FROM users");

  beforeAll(async () => {
    t = await startTestStack({ LAMPION_STORAGE_DRIVER: 'copy' });
    project = (await t.request('POST', '/v1/projects', { body: { name: 'restore-faults' } })).body;
    known.branches.add(project.branch_id);
    known.endpoints.add(project.endpoint_id);
    await q(project.connection_string, "CREATE TABLE users (id serial primary key, name text); INSERT INTO users (name) VALUES ('alice')");
    backup = (await t.request('POST', path('/backups'), { body: { name: 'point' } })).body;
    await q(project.connection_string, "INSERT INTO users (name) VALUES ('after-backup')");
    port = (await t.stack.db.selectFrom('endpoints').select('port').where('id', '=', project.endpoint_id).executeTakeFirstOrThrow()).port!;
  });
  afterEach(() => setFaults());
  afterAll(async () => {
    await t?.stop();
  });

  async function expectFailed(res: { status: number; body: any }, fault: string, step: string) {
    const activity = fault.replace(/[#:].*$/, '');
    expect(res.status).toBe(500);
    expect(res.body.error).toMatchObject({ code: 'operation_failed', message: `injected fault in activity ${activity}` });
    const op = await t.stack.db.selectFrom('operations').selectAll().where('id', '=', res.body.error.details.operation_id).executeTakeFirstOrThrow();
    expect(op).toMatchObject({ status: 'failed', step, error: { type: 'InjectedFault' } });
    return op;
  }

  async function expectOnlyKnown() {
    const db = t.stack.db;
    expect((await db.selectFrom('branches').select('id').execute()).map((r) => r.id).sort()).toEqual([...known.branches].sort());
    expect((await db.selectFrom('endpoints').select('id').execute()).map((r) => r.id).sort()).toEqual([...known.endpoints].sort());
    expect(branchDirNames(layout())).toEqual([...known.branches].sort());
    expect(fs.readdirSync(layout().walDir).sort()).toEqual([...known.branches].sort());
    expect(fs.readdirSync(layout().endpointsDir).sort()).toEqual([...known.endpoints].sort());
  }

  describe('restoreBranch', () => {
    it.each([
      ['createBranchRecords:after', 'catalog'],
      ['resolveRestoreTarget', 'resolve_target'],
      ['provisionRestoredCompute', 'restore_and_start'],
      ['provisionRestoredCompute:after', 'restore_and_start'],
      ['markBranchReady', 'finalize'],
    ])('%s: the error, and no row, dir, port or process of the new branch', async (fault, step) => {
      setFaults(fault);
      const res = await t.request('POST', path(`/backups/${backup.id}/restore`), { body: { name: `r-${fault.replace(/[#:]/g, '-')}` } });
      const op = await expectFailed(res, fault, step);
      await expectOnlyKnown();
      expect(postgresOf(layout().branchDataDir(op.workflow_id.replace(/^branch\//, '')))).toEqual([]);
    });

    it('after those failures, the same restore works', async () => {
      const res = await t.request('POST', path(`/backups/${backup.id}/restore`), { body: { name: 'r-ok' } });
      expect(res.status).toBe(201);
      expect(await names(res.body.connection_string)).toBe('alice');
      await t.request('DELETE', path(`/branches/${res.body.branch_id}`));
    });
  });

  describe('restoreBranchInPlace', () => {
    it.each([
      ['setBranchStatus#1:after', 'mark_restoring'],
      ['resolveRestoreTarget', 'resolve_target'],
      ['stopEndpoint#1:after', 'stop_compute'],
      ['setBranchDataAside:after', 'set_aside'],
      ['restoreBranchDataInPlace', 'restore'],
      ['restoreBranchDataInPlace:after', 'restore'],
      // #1 is the restored compute's start; the undo of stop_compute is #2.
      ['startEndpoint#1:after', 'start_compute'],
      ['createPreservedBranchRecords:after', 'preserve'],
      ['adoptBranchDataAside:after', 'preserve'],
      ['markBranchReady', 'finalize'],
    ])('%s: the error, and the branch ready on its old data, endpoint and port, nothing preserved', async (fault, step) => {
      setFaults(fault);
      const res = await t.request('POST', path(`/branches/${project.branch_id}/restore`), { body: { source_lsn: backup.lsn, preserve_under_name: `kept-${fault.replace(/[#:]/g, '-')}` } });
      await expectFailed(res, fault, step);
      setFaults();
      expect((await t.request('GET', path(`/branches/${project.branch_id}`))).body.status).toBe('ready');
      const ep = await t.stack.db.selectFrom('endpoints').selectAll().where('id', '=', project.endpoint_id).executeTakeFirstOrThrow();
      expect(ep).toMatchObject({ status: 'running', port });
      expect(await names(project.connection_string)).toBe('alice,after-backup');
      await expectOnlyKnown();
    });
  });
});
