import fs from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { defaultPayloadConverter } from '@temporalio/common';
import { startTestStack, TestStack } from './support/stack';
import { psql } from './support/clients';
import { groupAlive } from '../src/engine/exec';

/**
 * Long host work (a fork by copy of a running parent: pg_basebackup) under deliberately small
 * timeouts: 2 s of heartbeat timeout and 2 s of start-to-close for short host work. The copy
 * outlives both and still succeeds (it heartbeats its bytes; long work is bounded by heartbeats
 * alone); a cancelled one stops its processes and leaves nothing behind; a second attempt into
 * the same directory stops the first before it writes.
 */

const q = async (cs: string, sql: string) => {
  const r = await psql(cs, sql);
  if (r.code !== 0) throw new Error(`psql failed: ${r.stderr}`);
  return r.stdout.trim();
};

function pgrep(pattern: string): string[] {
  try {
    return execFileSync('pgrep', ['-a', '-f', pattern], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

interface Pending {
  name: string;
  attempt: number;
  bytesDone?: number;
}

describe('long host work: heartbeats, cancellation, one copy per directory', () => {
  let t: TestStack;
  let project: any;
  const path = (p: string) => `/v1/projects/${project.id}${p}`;

  /** The workflow's pending host activities, with their last heartbeat's details. */
  async function pending(workflowId: string): Promise<Pending[]> {
    const d = await t.stack.temporal.workflow.getHandle(workflowId).describe();
    return (d.raw.pendingActivities ?? []).map((a) => {
      const p = a.heartbeatDetails?.payloads?.[0];
      const details = p ? (defaultPayloadConverter.fromPayload(p as any) as { bytesDone?: number } | undefined) : undefined;
      return { name: a.activityType?.name ?? '', attempt: a.attempt ?? 0, bytesDone: details?.bytesDone };
    });
  }

  /** The workflow id of the branch create the API is running now. */
  async function runningCreate(): Promise<string> {
    return until('the branch create to start', async () => {
      const op = await t.stack.db.selectFrom('operations').select('workflow_id').where('kind', '=', 'branch.create').where('status', '=', 'running').executeTakeFirst();
      return op?.workflow_id;
    });
  }

  /** Polls the running fork until its heartbeats report bytes; answers every observation. */
  async function watchFork(workflowId: string, stop: () => boolean): Promise<Pending[]> {
    const seen: Pending[] = [];
    while (!stop()) {
      try {
        seen.push(...(await pending(workflowId)).filter((a) => a.name === 'provisionBranchCompute'));
      } catch {
        // not started yet
      }
      await sleep(200);
    }
    return seen;
  }

  beforeAll(async () => {
    t = await startTestStack({ LAMPION_STORAGE_DRIVER: 'copy' });
    const res = await t.request('POST', '/v1/projects', { body: { name: 'big' } });
    expect(res.status).toBe(201);
    project = res.body;
    // Big enough (about 650 MB) that pg_basebackup of the running parent takes clearly longer than 2 s here.
    await q(project.connection_string, 'CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 30) AS pad FROM generate_series(1, 600000) g');
    // The small timeouts from here on: the project's initdb (short host work) is not under test.
    Object.assign(t.env, { LAMPION_HOST_ACTIVITY_TIMEOUT_SECONDS: '2', LAMPION_HOST_HEARTBEAT_SECONDS: '2' });
    await t.restart();
    expect(t.stack.config.hostTimeouts).toMatchObject({ heartbeatSeconds: 2, shortSeconds: 2 });
    expect(await q(project.connection_string, 'SELECT count(*) FROM big')).toBe('600000');
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('a fork that outlives the timeouts succeeds on its first attempt, heartbeating its bytes', async () => {
    let finished = false;
    const started = Date.now();
    const post = t.request('POST', path('/branches'), { body: { name: 'slow-copy' } }).finally(() => (finished = true));
    const workflowId = await runningCreate();
    const seen = await watchFork(workflowId, () => finished);
    const res = await post;
    const took = Date.now() - started;
    expect(res.status).toBe(201);
    expect(took).toBeGreaterThan(2000); // the premise: the copy outlived the 2 s timeouts
    // Progress reached Temporal, from the first and only attempt.
    expect(seen.some((a) => (a.bytesDone ?? 0) > 0)).toBe(true);
    expect(seen.every((a) => a.attempt === 1)).toBe(true);
    const history = await t.stack.temporal.workflow.getHandle(workflowId).fetchHistory();
    const events = history.events ?? [];
    const scheduled = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'provisionBranchCompute');
    expect(scheduled).toHaveLength(1);
    const startedEvents = events.filter((e) => e.activityTaskStartedEventAttributes?.scheduledEventId?.toString() === scheduled[0].eventId?.toString());
    expect(startedEvents.map((e) => e.activityTaskStartedEventAttributes!.attempt)).toEqual([1]);
    expect(events.some((e) => e.activityTaskTimedOutEventAttributes)).toBe(false);
    expect(await q(res.body.connection_string, 'SELECT count(*) FROM big')).toBe('600000');
  });

  it('a cancelled fork leaves no process, no directory and no row; its operation is final', async () => {
    const post = t.request('POST', path('/branches'), { body: { name: 'cancelled-copy' } });
    const workflowId = await runningCreate();
    const childId = workflowId.replace(/^branch\//, '');
    const layout = t.stack.engine.layout;
    // Cancel while the copy runs: pg_basebackup is there (its heartbeated bytes are the first
    // test's concern; waiting for them too let a fast machine finish the copy first).
    await until('the copy to be under way', async () => (pgrep(`pg_basebackup -D ${layout.branchDataDir(childId)}`).length > 0 ? true : undefined));
    await t.stack.temporal.workflow.getHandle(workflowId).cancel();
    const res = await post;
    expect(res.status).toBe(500);
    const opId = res.body.error.details.operation_id;

    expect(pgrep(`pg_basebackup.*${childId}`)).toEqual([]);
    expect(pgrep(`postgres.*${childId}`)).toEqual([]);
    expect(fs.existsSync(layout.branchDataDir(childId))).toBe(false);
    expect(fs.existsSync(`${layout.branchDataDir(childId)}.copying`)).toBe(false);
    expect(fs.readdirSync(layout.branchesDir).filter((f) => f.includes(childId))).toEqual([]);
    expect(fs.readdirSync(layout.walDir).filter((f) => f.includes(childId))).toEqual([]);
    const db = t.stack.db;
    expect(await db.selectFrom('branches').select('id').where('id', '=', childId).execute()).toEqual([]);
    expect(await db.selectFrom('endpoints').select('id').where('branch_id', '=', childId).execute()).toEqual([]);
    const op = await db.selectFrom('operations').selectAll().where('id', '=', opId).executeTakeFirstOrThrow();
    // Where the cancel lands depends on the copy's last bytes: a copy that finished before its next
    // heartbeat carried the cancel is undone from the step after it (seen under a loaded CI run).
    expect(op).toMatchObject({ status: 'failed', error: { type: 'Cancelled' } });
    expect(['fork_and_start', 'seeds', 'finalize']).toContain(op.step);
    const described = await t.stack.temporal.workflow.getHandle(workflowId).describe();
    expect(described.status.name).toBe('CANCELLED');
  });

  describe('a second attempt into the same directory', () => {
    const parent = () => ({ endpointId: project.endpoint_id, port: project.port as number });
    let parentPort: number;

    beforeAll(async () => {
      parentPort = (await t.stack.db.selectFrom('endpoints').select('port').where('id', '=', project.endpoint_id).executeTakeFirstOrThrow()).port!;
    });

    it('stops the first copy before it writes, and makes a whole fork', async () => {
      const branches = t.stack.engine.branches;
      const child = 'br-retrytest0001';
      const lock = `${t.stack.engine.layout.branchDataDir(child)}.copying`;
      const pgidOf = async () => {
        try {
          return (JSON.parse(fs.readFileSync(lock, 'utf8')) as { pgid: number }).pgid;
        } catch {
          return undefined;
        }
      };
      const first = branches.fork(project.branch_id, child, { ...parent(), port: parentPort });
      first.catch(() => undefined);
      const firstPgid = await until('the first copy to run', pgidOf);
      expect(groupAlive(firstPgid)).toBe(true);
      const second = branches.fork(project.branch_id, child, { ...parent(), port: parentPort });
      // When the second copy runs, the first one's group is gone.
      const secondPgid = await until('the second copy to run', async () => {
        const p = await pgidOf();
        return p !== undefined && p !== firstPgid ? p : undefined;
      });
      expect(groupAlive(firstPgid)).toBe(false);
      await expect(first).rejects.toThrow();
      const { lsn } = await second;
      expect(lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
      expect(groupAlive(secondPgid)).toBe(false);
      expect(fs.existsSync(lock)).toBe(false);
      expect(fs.existsSync(`${t.stack.engine.layout.branchDataDir(child)}/PG_VERSION`)).toBe(true);
      expect(fs.existsSync(`${t.stack.engine.layout.branchDataDir(child)}/.lampion-fork`)).toBe(true);
      await branches.remove(child);
    });

    it('stops a copy that an earlier (crashed) attempt left running, named by a stale .copying file', async () => {
      const branches = t.stack.engine.branches;
      const child = 'br-retrytest0002';
      const lock = `${t.stack.engine.layout.branchDataDir(child)}.copying`;
      const orphan = spawn('sleep', ['120'], { detached: true, stdio: 'ignore' });
      orphan.unref();
      await until('the orphan to run', async () => (orphan.pid && groupAlive(orphan.pid) ? true : undefined));
      fs.writeFileSync(lock, JSON.stringify({ pgid: orphan.pid }));
      await branches.fork(project.branch_id, child, { ...parent(), port: parentPort });
      expect(groupAlive(orphan.pid!)).toBe(false);
      expect(fs.existsSync(lock)).toBe(false);
      await branches.remove(child);
    });
  });
});
