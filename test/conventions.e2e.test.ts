import { chromium } from 'playwright-core';
import { loadConfig } from '../src/config';
import { Stack } from '../src/stack/stack';
import { ROLES, roleRank, type Role } from '../src/domain/rbac';
import { startTestStack, TestStack } from './support/stack';

/** A value for every path parameter of the document: fake but well-formed, so checks pass and lookups find nothing. */
const PARAM_VALUES: Record<string, string> = {
  project_id: 'prj-matrix000000',
  branch_id: 'br-matrix000000',
  endpoint_id: 'ep-matrix000000',
  replica_id: 'ep-matrix000001',
  backup_id: 'bk-matrix000000',
  seed_id: 'seed-matrix000000',
  operation_id: 'op-matrix000000',
  rule_id: 'amr-matrix000000',
  uid: 'usr-matrix000000',
  inv_id: 'inv-matrix000000',
  key_id: 'key-matrix000000',
  id: 'wh-matrix000000',
  name: 'matrix_name',
  database: 'matrix_db',
  schema: 'matrix_schema',
  table: 'matrix_table',
  column: 'matrix_column',
  role_name: 'matrix_role',
  extension: 'matrix_ext',
};

interface Route {
  method: string;
  path: string;
  minRole?: Role;
  secured: boolean;
}

describe('API conventions on every route', () => {
  let t: TestStack;
  let doc: any;
  let routes: Route[];

  beforeAll(async () => {
    t = await startTestStack();
    doc = (await t.request('GET', '/v1/openapi.json', { key: null })).body;
    routes = Object.entries(doc.paths as Record<string, Record<string, any>>).flatMap(([path, ops]) =>
      Object.entries(ops).map(([method, op]) => ({ method: method.toUpperCase(), path, minRole: op['x-lampion-min-role'], secured: (op.security ?? []).length > 0 })),
    );
  });
  afterAll(async () => {
    await t?.stop();
  });

  const fill = (path: string) =>
    path.replace(/\{(\w+)\}/g, (_, name: string) => {
      const v = PARAM_VALUES[name];
      if (!v) throw new Error(`no matrix value for path parameter {${name}} of ${path}: add one`);
      return v;
    });

  it('documents a policy for every authenticated route, and answers 401 without a key', async () => {
    expect(routes.length).toBeGreaterThan(90);
    for (const r of routes) {
      if (!r.secured) continue;
      expect([r.method, r.path, ROLES.includes(r.minRole as Role)]).toEqual([r.method, r.path, true]);
      const res = await t.request(r.method, fill(r.path), { key: null, ...(r.method === 'GET' || r.method === 'DELETE' ? {} : { body: {} }) });
      expect([r.method, r.path, res.status]).toEqual([r.method, r.path, 401]);
    }
  });

  it('role matrix: below the documented role is 403 and changes nothing; at or above it, authorization passes', async () => {
    const keys = Object.fromEntries(await Promise.all(ROLES.map(async (role) => [role, await t.key(role)] as const))) as Record<Role, string>;
    const projectsBefore = await t.stack.db.selectFrom('projects').select('id').execute();
    const keysBefore = await t.stack.db.selectFrom('api_keys').select('id').execute();
    const mismatches: string[] = [];
    for (const r of routes.filter((x) => x.secured)) {
      for (const role of ROLES) {
        const res = await t.request(r.method, fill(r.path), { key: keys[role], ...(r.method === 'GET' || r.method === 'DELETE' ? {} : { body: {} }) });
        const allowed = roleRank(role) >= roleRank(r.minRole!);
        const ok = allowed ? res.status !== 401 && res.status !== 403 : res.status === 403;
        if (!ok) mismatches.push(`${role} ${r.method} ${r.path}: ${res.status} (documented: ${r.minRole} or above)`);
        if (res.status === 403) expect(res.body.error.code).toBe('forbidden');
      }
    }
    expect(mismatches).toEqual([]);
    // Nothing was made by any of it (every body was empty, every id fake).
    expect((await t.stack.db.selectFrom('projects').select('id').execute()).length).toBe(projectsBefore.length);
    expect((await t.stack.db.selectFrom('api_keys').select('id').execute()).length).toBe(keysBefore.length);
  });

  it('paginates every list route the same way: an array body, X-Total-Count, limit capped at 100', async () => {
    const lists = routes.filter((r) => r.method === 'GET' && r.secured && doc.paths[r.path].get.parameters?.some((p: any) => p.name === 'limit'));
    expect(lists.map((r) => r.path)).toEqual(expect.arrayContaining(['/v1/projects', '/v1/orgs/members', '/v1/orgs/api-keys', '/v1/orgs/audit-log', '/v1/orgs/webhooks', '/v1/orgs/invitations']));
    for (const r of lists.filter((x) => !x.path.includes('{'))) {
      const res = await t.request('GET', `${r.path}?limit=1`);
      expect([r.path, res.status, Array.isArray(res.body), res.headers.get('x-total-count') !== null]).toEqual([r.path, 200, true, true]);
      expect(res.body.length).toBeLessThanOrEqual(1);
      expect([r.path, (await t.request('GET', `${r.path}?limit=101`)).status]).toEqual([r.path, 422]);
    }
  });

  it('rate limits per key, counted in the catalog so every API instance shares the count', async () => {
    // A second API instance on the same catalog (no worker, no proxy).
    const second = await Stack.start(loadConfig({ ...process.env, ...t.env, LAMPION_API_PORT: '0' }), { api: true, worker: false, proxy: false });
    const limits = [t.stack.config.rateLimits, second.config.rateLimits];
    const saved = limits.map((l) => l.pro);
    try {
      for (const l of limits) l.pro = 4;
      const key = await t.key('viewer');
      const at = (api: string) => fetch(`${api}/v1/projects`, { headers: { authorization: `Bearer ${key}` } });
      const apis = [t.api, `http://127.0.0.1:${second.apiPort}`];
      const answers = [];
      for (let i = 0; i < 5; i++) answers.push(await at(apis[i % 2]));
      expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200, 429]);
      expect(answers.map((r) => r.headers.get('x-ratelimit-remaining'))).toEqual(['3', '2', '1', '0', '0']);
      for (const r of answers) {
        expect(r.headers.get('x-ratelimit-limit')).toBe('4');
        expect(Number(r.headers.get('x-ratelimit-reset'))).toBeGreaterThan(Date.now() / 1000 - 1);
      }
      const refused = answers[4];
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(((await refused.json()) as any).error.code).toBe('rate_limited');
      // Another key has its own count.
      expect((await t.request('GET', '/v1/projects', { key: await t.key('viewer') })).status).toBe(200);
    } finally {
      limits.forEach((l, i) => (l.pro = saved[i]));
      await second.stop();
    }
  });

  it('Idempotency-Key: a retried POST answers the first result once, another body with the key is 422', async () => {
    const post = (key: string, body: unknown) =>
      fetch(`${t.api}/v1/orgs/api-keys`, { method: 'POST', headers: { authorization: `Bearer ${t.ownerKey}`, 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify(body) });
    const first = await post('retry-1', { name: 'idem' });
    expect(first.status).toBe(201);
    const a = (await first.json()) as any;
    const again = await post('retry-1', { name: 'idem' });
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await again.json()).toEqual(a);
    const made = await t.stack.db.selectFrom('api_keys').select('id').where('name', '=', 'idem').execute();
    expect(made.map((k) => k.id)).toEqual([a.id]);
    // Another key of the organization with the same Idempotency-Key and body does not get the first answer.
    const stranger = await fetch(`${t.api}/v1/orgs/api-keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await t.key('developer')}`, 'content-type': 'application/json', 'idempotency-key': 'retry-1' },
      body: JSON.stringify({ name: 'idem' }),
    });
    expect(stranger.status).toBe(422);
    expect(JSON.stringify(await stranger.json())).not.toContain(a.key);
    const other = await post('retry-1', { name: 'different' });
    expect(other.status).toBe(422);
    expect(((await other.json()) as any).error.code).toBe('idempotency_key_reused');
    // A refused first request keeps nothing: the same key may be used again once the body is right.
    expect((await post('retry-2', { name: '' })).status).toBe(422);
    expect((await post('retry-2', { name: 'second try' })).status).toBe(201);
    expect((await post('x'.repeat(300), { name: 'x' })).status).toBe(422);
    expect((await post('has space', { name: 'x' })).status).toBe(422);
    // Work a workflow does: a branch create retried with its key makes one branch.
    const p = await t.request('POST', '/v1/projects', { body: { name: 'idem-project' } });
    const branch = (key: string) =>
      fetch(`${t.api}/v1/projects/${p.body.id}/branches`, { method: 'POST', headers: { authorization: `Bearer ${t.ownerKey}`, 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify({ name: 'dev' }) });
    const b1 = await branch('branch-1');
    const b2 = await branch('branch-1');
    expect([b1.status, b2.status]).toEqual([201, 201]);
    expect(((await b2.json()) as any).id).toBe(((await b1.json()) as any).id);
    const branches = await t.request('GET', `/v1/projects/${p.body.id}/branches`);
    expect(branches.body.filter((b: any) => b.name === 'dev')).toHaveLength(1);
  });

  it('renders the docs page in headless Chromium with no network beyond the API itself', async () => {
    const browser = await chromium.launch({ executablePath: process.env.LAMPION_CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    try {
      const page = await browser.newPage();
      const elsewhere: string[] = [];
      await page.route('**/*', (route) => {
        const u = new URL(route.request().url());
        if (u.hostname === '127.0.0.1') return route.continue();
        elsewhere.push(u.href);
        return route.abort();
      });
      const failed: string[] = [];
      page.on('requestfailed', (r) => failed.push(r.url()));
      page.on('pageerror', (e) => failed.push(`page error: ${e.message}`));
      const res = await page.goto(`${t.api}/docs`);
      expect(res?.status()).toBe(200);
      await page.waitForSelector('.opblock', { timeout: 30_000 });
      expect(await page.locator('.info .title').first().innerText()).toContain('Lampion API');
      expect(await page.locator('.opblock').count()).toBe(routes.length);
      expect(await page.locator('.opblock-summary-path', { hasText: '/v1/orgs/webhooks/{id}/deliveries' }).count()).toBeGreaterThan(0);
      expect(elsewhere).toEqual([]);
      expect(failed).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});
