import { spawn } from 'node:child_process';
import { isPortFree } from '../src/engine/ports';
import { temporalFiles } from '../src/stack/temporalServer';
import { createProcessStack, processesMentioning, ProcessStack, waitFor } from './support/processStack';

/**
 * Crash tests on a whole stack in a process of its own with the embedded Temporal: kill -9 of
 * the node process, kill -9 of the Temporal server. Recovery must need nobody.
 */
describe('crashes', () => {
  let s: ProcessStack;
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    // 202 at once, so the kill lands while the create runs.
    s = await createProcessStack({ LAMPION_API_WAIT_MS: '0' });
    await s.start();
  });

  afterAll(async () => {
    if (!s) return;
    await s.stop();
    // Nothing of the stack is left: no process on its data dir, no port held.
    const left = processesMentioning(s.dataDir);
    const busy: number[] = [];
    for (const p of s.ports) if (!(await isPortFree(p))) busy.push(p);
    if (process.env.LAMPION_TEST_KEEP_LOGS) require('node:fs').writeFileSync(process.env.LAMPION_TEST_KEEP_LOGS, s.output());
    await s.destroy();
    // eslint-disable-next-line no-console
    console.log('crash test timings (ms):', JSON.stringify(timings));
    expect(left).toEqual([]);
    expect(busy).toEqual([]);
  });

  const waitProjectSettled = (projectId: string, operationId: string, timeoutMs: number) =>
    waitFor(
      `project ${projectId} to be ready or gone, with operation ${operationId} final`,
      async () => {
        const p = await s.request('GET', `/v1/projects/${projectId}`);
        const op = await s.request('GET', `/v1/projects/${projectId}/operations/${operationId}`);
        const settled = (p.status === 200 && p.body.status === 'ready') || p.status === 404;
        const opFinal = op.status === 404 || (op.status === 200 && op.body.status !== 'running');
        return settled && opFinal ? { project: p, operation: op } : undefined;
      },
      timeoutMs,
      500,
    );

  test('kill -9 of the node process during a project create: the next start just works and the create settles', async () => {
    const firstTemporal = s.temporalPids();
    expect(firstTemporal).toHaveLength(1);
    const created = await s.request('POST', '/v1/projects', { body: { name: 'crash-a' } });
    expect(created.status).toBe(202);
    const { project_id: projectId, operation_id: operationId } = created.body;
    await s.kill9();
    const killedAt = Date.now();

    // The embedded Temporal dies with the stack (parent-death signal), within moments.
    await waitFor('the first Temporal to die with the stack', () => processesMentioning(temporalFiles(s.dataDir).db).length === 0 || undefined, 5000, 50);
    timings.temporalGoneAfterNodeKill = Date.now() - killedAt;

    // The next start works: no "port … is already in use".
    const restartAt = Date.now();
    await s.start();
    timings.restartAfterNodeKill = Date.now() - restartAt;
    expect(s.output()).not.toMatch(/already in use/);
    const second = s.temporalPids();
    expect(second).toHaveLength(1);
    expect(second).not.toEqual(firstTemporal);

    const { project, operation } = await waitProjectSettled(projectId, operationId, 60_000);
    timings.createSettledAfterKill = Date.now() - killedAt;
    if (project.status === 200) expect(project.body.status).toBe('ready');
    if (operation.status === 200) expect(operation.body.status).not.toBe('running');
    const health = await s.request('GET', '/health');
    expect(health.status).toBe(200);
  });

  test('kill -9 of the embedded Temporal: the stack restarts it; /health and mutations answer 503 quickly meanwhile', async () => {
    const healthy = async (what: string, timeoutMs: number) =>
      waitFor(
        what,
        async () => {
          const h = await s.request('GET', '/health');
          slowestHealth = Math.max(slowestHealth, h.ms);
          expect(h.ms).toBeLessThan(2000);
          return h.status === 200 || undefined;
        },
        timeoutMs,
        100,
      );
    let slowestHealth = 0;

    // 1. A plain kill: the supervisor brings it back (500 ms backoff, then its start), and the
    //    workers poll again.
    const [first] = s.temporalPids();
    expect(first).toBeDefined();
    process.kill(first, 'SIGKILL');
    const killedAt = Date.now();
    await waitFor('the restarted Temporal', () => (s.temporalPids().some((p) => p !== first) ? true : undefined), 30_000, 50);
    timings.temporalProcessBackAfterKill = Date.now() - killedAt;
    await healthy('health 200 after the Temporal restart', 60_000);
    timings.healthyAfterTemporalKill = Date.now() - killedAt;
    expect(s.output()).toMatch(/embedded Temporal exited \(137\); restarting it in 500 ms/);

    // 2. A kill while something holds its lock (it cannot come back until released): the
    //    outage lasts long enough to look at. The lock is taken as the killed server lets go of
    //    it, before the supervisor's restart.
    const [second] = s.temporalPids();
    // Its own process group, so the kill below takes flock and its sleep together.
    const holder = spawn('flock', ['--close', temporalFiles(s.dataDir).lock, 'sleep', '60'], { stdio: 'ignore', detached: true });
    await new Promise((r) => setTimeout(r, 200));
    process.kill(second, 'SIGKILL');
    const outageAt = Date.now();
    try {
      // /health answers within 2 s, 503 with temporal down.
      const down = await waitFor(
        '/health to show temporal down',
        async () => {
          const h = await s.request('GET', '/health');
          slowestHealth = Math.max(slowestHealth, h.ms);
          expect(h.ms).toBeLessThan(2000);
          return h.status === 503 && h.body.components.temporal.status === 'down' ? h : undefined;
        },
        5000,
        20,
      );
      timings.healthDownAnswerMs = down.ms;
      expect(down.body.status).toBe('degraded');

      // A mutation answers 503 with a retry hint, at once.
      const refused = await s.request('POST', '/v1/projects', { body: { name: 'crash-b-refused' } });
      timings.refusedMutationMs = refused.ms;
      expect(refused.ms).toBeLessThan(2000);
      expect(refused.status).toBe(503);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(refused.body.error).toMatchObject({ code: 'temporal_unavailable', details: { component: 'temporal' } });
      expect(typeof refused.body.error.message).toBe('string');
      // Reads that do not need Temporal still answer.
      expect((await s.request('GET', '/v1/projects')).status).toBe(200);
    } finally {
      process.kill(-holder.pid!, 'SIGKILL');
    }
    const releasedAt = Date.now();
    await healthy('health 200 once the lock is released', 60_000);
    timings.healthyAfterLockRelease = Date.now() - releasedAt;
    timings.secondOutage = Date.now() - outageAt;
    timings.slowestHealth = slowestHealth;
    expect(s.temporalPids()).toHaveLength(1);

    // A create after the recovery succeeds.
    const createdAt = Date.now();
    const created = await s.request('POST', '/v1/projects', { body: { name: 'crash-b' } });
    expect(created.status).toBe(202);
    const { project } = await waitProjectSettled(created.body.project_id, created.body.operation_id, 60_000);
    timings.createAfterTemporalRestart = Date.now() - createdAt;
    expect(project.status).toBe(200);
    expect(project.body.status).toBe('ready');
  });
});
