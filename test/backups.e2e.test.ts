/**
 * Backups and point-in-time restore through the API, on every installed major: a restore holds
 * exactly the transactions committed before its LSN, whether the point is a named backup, an LSN,
 * a moment, or lies before a reset.
 */
import { startTestStack, TestStack } from './support/stack';
import { psqlOk } from './support/clients';
import { TEST_MAJORS } from './support/pg';
import { runScheduleOnce, waitFor } from './support/schedules';

jest.setTimeout(240_000);

const q = psqlOk;
const ids = async (cs: string) => (await q(cs, 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM t')).split(',').filter(Boolean).map(Number);

describe.each(TEST_MAJORS)('backups and PITR on Postgres %i', (major) => {
  let t: TestStack;
  let project: any;
  const path = (p: string) => `/v1/projects/${project.id}${p}`;
  const insert = (cs: string, id: number) => q(cs, `INSERT INTO t VALUES (${id})`);

  beforeAll(async () => {
    t = await startTestStack();
    const res = await t.request('POST', '/v1/projects', { body: { name: `pitr-${major}`, pg_version: major } });
    expect(res.status).toBe(201);
    project = res.body;
    expect(project.pg_version).toBe(major);
    await q(project.connection_string, 'CREATE TABLE t (id int PRIMARY KEY)');
    await insert(project.connection_string, 1);
  });
  afterAll(async () => {
    await t?.stop();
  });

  let backup: any;

  it('records a named restore point at the current LSN; a restore of it holds exactly what was committed before', async () => {
    await insert(project.connection_string, 2);
    const res = await t.request('POST', path('/backups'), { body: { name: 'before-migration', branch_id: project.branch_id } });
    expect(res.status).toBe(201);
    backup = res.body;
    expect(backup).toMatchObject({ name: 'before-migration', branch_id: project.branch_id, kind: 'named' });
    expect(backup.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    // The very next transaction: its commit record starts at or past the restore point.
    await insert(project.connection_string, 3);
    await q(project.connection_string, 'DROP TABLE t; CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (99)');

    const list = await t.request('GET', path('/backups'));
    expect(list.status).toBe(200);
    expect(list.body.map((b: any) => b.id)).toContain(backup.id);
    expect((await t.request('GET', path(`/backups/${backup.id}`))).body.lsn).toBe(backup.lsn);

    const restored = await t.request('POST', path(`/backups/${backup.id}/restore`));
    expect(restored.status).toBe(201);
    expect(restored.body).toMatchObject({ lsn: backup.lsn, compute_id: expect.stringMatching(/^ep-/), branch_id: expect.stringMatching(/^br-/) });
    // The base was taken by the backup itself, after the last commit: the WAL replayed shows none.
    if (restored.body.last_commit_at !== null) expect(Date.parse(restored.body.last_commit_at)).toBeLessThanOrEqual(Date.parse(backup.created_at));
    expect(await ids(restored.body.connection_string)).toEqual([1, 2]);
    // A read-write branch of its own; the source is untouched.
    await insert(restored.body.connection_string, 50);
    expect(await ids(project.connection_string)).toEqual([99]);
    const branch = await t.request('GET', path(`/branches/${restored.body.branch_id}`));
    expect(branch.body).toMatchObject({ parent_id: project.branch_id, parent_lsn: backup.lsn, pg_version: major });
  });

  it('branches at an exact LSN: transactions whose commit starts before it are in, the rest out', async () => {
    const cs = project.connection_string;
    await insert(cs, 100);
    // Read inside the transaction, just before its commit: the commit record starts past it.
    const lsn = await q(cs, 'BEGIN; INSERT INTO t VALUES (101); SELECT pg_current_wal_insert_lsn(); COMMIT;');
    const at = lsn.split('\n').find((l) => /\//.test(l))!.trim();
    await insert(cs, 102);
    const res = await t.request('POST', path('/branches'), { body: { name: `at-lsn-${major}`, parent_lsn: at } });
    expect(res.status).toBe(201);
    expect(res.body.parent_lsn).toBe(at);
    expect(res.body.seeds).toEqual([]);
    expect(await ids(res.body.connection_string)).toEqual([99, 100]);
  });

  it('branches at a moment: everything committed at or before it, and says which LSN and last commit', async () => {
    const cs = project.connection_string;
    await insert(cs, 200);
    const moment = await q(cs, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    await new Promise((r) => setTimeout(r, 20));
    await insert(cs, 201);
    const res = await t.request('POST', path('/branches'), { body: { name: `at-time-${major}`, parent_timestamp: moment } });
    expect(res.status).toBe(201);
    expect(await ids(res.body.connection_string)).toEqual([99, 100, 101, 102, 200]);
    expect(res.body.parent_lsn).toMatch(/\//);
    expect(Date.parse(res.body.parent_commit_at)).toBeLessThanOrEqual(Date.parse(moment));
  });

  it('refuses a moment without an offset, a malformed LSN, both at once, and a moment outside the window, changing nothing', async () => {
    const before = (await t.request('GET', path('/branches'))).body.length;
    const bad = [
      { name: 'x1', parent_timestamp: '2026-12-01T10:00:00' },
      { name: 'x2', parent_lsn: '0/XYZ' },
      { name: 'x3', parent_lsn: '0/1', parent_timestamp: '2026-12-01T10:00:00Z' },
      { name: 'x4', parent_timestamp: '2026-12-01T10:00:00\u0000Z' },
    ];
    for (const body of bad) {
      const res = await t.request('POST', path('/branches'), { body });
      expect(res.status).toBe(422);
    }
    const old = await t.request('POST', path('/branches'), { body: { name: 'x5', parent_timestamp: '2020-01-01T00:00:00Z' } });
    expect(old.status).toBe(422);
    expect(old.body.error.message).toMatch(/retention window starts at/);
    const future = await t.request('POST', path('/branches'), { body: { name: 'x6', parent_lsn: 'FF/0' } });
    expect(future.status).toBe(422);
    expect((await t.request('GET', path('/branches'))).body.length).toBe(before);
  });

  it('restores to before a reset: the branch history before it is kept', async () => {
    const child = (await t.request('POST', path('/branches'), { body: { name: `resettable-${major}` } })).body;
    await insert(child.connection_string, 300);
    const bk = await t.request('POST', path('/backups'), { body: { name: 'before-reset', branch_id: child.id } });
    expect(bk.status).toBe(201);
    await insert(child.connection_string, 301);
    const reset = await t.request('POST', path(`/branches/${child.id}/reset`));
    expect(reset.status).toBe(200);
    expect(await ids(child.connection_string)).not.toContain(300);
    const restored = await t.request('POST', path(`/backups/${bk.body.id}/restore`), { body: { name: `pre-reset-${major}` } });
    expect(restored.status).toBe(201);
    const got = await ids(restored.body.connection_string);
    expect(got).toContain(300);
    expect(got).not.toContain(301);
  });

  it('rewinds a branch in place, keeping its endpoint, and preserves the state before under a new name', async () => {
    const cs = project.connection_string;
    await insert(cs, 400);
    const lsn = (await q(cs, 'SELECT pg_current_wal_insert_lsn()')).trim();
    // The mistake.
    await q(cs, 'DELETE FROM t');
    const res = await t.request('POST', path(`/branches/${project.branch_id}/restore`), { body: { source_lsn: lsn, preserve_under_name: `before-undo-${major}` } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: project.branch_id, compute_id: project.endpoint_id, lsn });
    expect(res.body.preserved_branch_id).toMatch(/^br-/);
    // The same connection string sees the state before the mistake.
    expect(await ids(cs)).toContain(400);
    const preserved = await t.request('GET', path(`/branches/${res.body.preserved_branch_id}`));
    expect(preserved.body).toMatchObject({ name: `before-undo-${major}`, status: 'ready' });
    const ep = await t.request('GET', path(`/endpoints/${preserved.body.compute_id}`));
    expect(await ids(ep.body.connection_string)).toEqual([]);
    // Writable again, and restorable again: its history goes on.
    await insert(cs, 401);
    expect(await ids(cs)).toContain(401);
  });

  it('refuses an in-place restore with neither or both points', async () => {
    for (const body of [{}, { source_lsn: '0/1', source_timestamp: '2026-12-01T00:00:00Z' }]) {
      const res = await t.request('POST', path(`/branches/${project.branch_id}/restore`), { body });
      expect(res.status).toBe(422);
    }
  });
});

describe('the backup Schedule', () => {
  let t: TestStack;
  let project: any;
  const path = (p: string) => `/v1/projects/${project.id}${p}`;
  const sweep = () => runScheduleOnce(t, t.stack.temporal.schedule.getHandle(t.stack.schedules.find((s) => s.id.endsWith('-backups'))!.id));
  const bases = async () => (await t.request('GET', path('/backups'))).body.filter((b: any) => b.kind === 'scheduled');

  beforeAll(async () => {
    // Every sweep takes a base; history older than ~2 s is past the window. On 17+ (the default
    // project) bases alternate full and incremental: b1 full, b2 on b1, b3 full, b4 on b3.
    t = await startTestStack({ LAMPION_BACKUP_INTERVAL_HOURS: '0', LAMPION_BACKUP_RETENTION_DAYS: String(2 / 86_400), LAMPION_BACKUP_INCREMENTAL_CHAIN: '1' });
    project = (await t.request('POST', '/v1/projects', { body: { name: 'schedule' } })).body;
    await q(project.connection_string, 'CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)');
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('takes base backups and prunes what the window and named backups no longer need, keeping restores working', async () => {
    const ids1 = async () => (await bases()).map((b: any) => b.id as string);
    await sweep();
    await waitFor(async () => (await bases()).length === 1);
    const [b1] = await ids1();
    // Needs b1 (no newer base existed when it was recorded), however old b1 gets.
    const named = await t.request('POST', path('/backups'), { body: { name: 'keep-me' } });
    expect(named.status).toBe(201);
    await q(project.connection_string, 'INSERT INTO t VALUES (2)');
    const sweepAfter = async (ms: number, count: number) => {
      await new Promise((r) => setTimeout(r, ms));
      await sweep();
      await waitFor(async () => (await bases()).length >= count);
    };
    await sweepAfter(2500, 2);
    const b2 = (await ids1()).find((id: string) => id !== b1)!;
    await sweepAfter(2500, 3);
    await sweepAfter(2500, 3);
    const left = await ids1();
    // The sweep also reads each compute's archiver: visible on the endpoint.
    const ep = (await t.request('GET', path(`/endpoints/${project.endpoint_id}`))).body;
    expect(ep.wal_archive).toMatchObject({ failed_count: 0, last_failed_wal: null });
    expect(ep.wal_archive.archived_count).toBeGreaterThan(0);
    // b2 is older than the newest base at the window's start: nothing needs it. b1 stays for the
    // named backup; had b2 been needed, b1 would have stayed for b2 too (domain/retention).
    expect(left).not.toContain(b2);
    expect(left).toContain(b1);
    const rows = await t.stack.db.selectFrom('base_backups').select(['id', 'parent_base_id']).where('branch_id', '=', project.branch_id).orderBy('taken_at').execute();
    const baseOf = async (backupId: string) => (await t.stack.db.selectFrom('backups').select('base_id').where('id', '=', backupId).executeTakeFirstOrThrow()).base_id;
    const b1Base = await baseOf(b1);
    if (project.pg_version >= 17) {
      // Every kept incremental has its parent kept too.
      const kept = new Set(rows.map((r) => r.id));
      expect(rows.some((r) => r.parent_base_id !== null)).toBe(true);
      for (const r of rows) if (r.parent_base_id) expect(kept.has(r.parent_base_id)).toBe(true);
      expect(rows.find((r) => r.id === b1Base)?.parent_base_id).toBeNull();
    }
    const restored = await t.request('POST', path(`/backups/${named.body.id}/restore`));
    expect(restored.status).toBe(201);
    expect(await ids(restored.body.connection_string)).toEqual([1]);
  });
});
