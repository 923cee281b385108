import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import fs from 'node:fs';
import { Client } from 'pg';
import { proxyCaFile, startTestStack, TestStack } from './support/stack';

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  at: number;
}

/** A receiver on loopback: records every request, answers what `answer` says. */
async function receiver(answer: (n: number) => number = () => 204) {
  const got: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      got.push({ headers: req.headers, body, at: Date.now() });
      res.statusCode = answer(got.length);
      res.end(res.statusCode >= 300 ? 'not now' : '');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got, close: () => new Promise((r) => server.close(r)) };
}

async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('webhooks: signed, durable deliveries', () => {
  let t: TestStack;

  beforeAll(async () => {
    t = await startTestStack({ LAMPION_WEBHOOK_RETRY_INITIAL_SECONDS: '0.5', LAMPION_WEBHOOK_RETRY_MAX_SECONDS: '1' });
  });
  afterAll(async () => {
    await t?.stop();
  });

  const hook = async (url: string, events: string[]) => {
    const res = await t.request('POST', '/v1/orgs/webhooks', { body: { url, events } });
    expect(res.status).toBe(201);
    return res.body as { id: string; secret: string };
  };
  const deliveries = async (id: string) => (await t.request('GET', `/v1/orgs/webhooks/${id}/deliveries`)).body as any[];

  it('delivers a signed event that standardwebhooks verifies, for API and operation events alike', async () => {
    const r = await receiver();
    const h = await hook(r.url, ['member.*', 'project.created', 'endpoint.*']);
    expect(h.secret).toMatch(/^whsec_/);
    const listed = await t.request('GET', '/v1/orgs/webhooks');
    expect(listed.body).toEqual([expect.objectContaining({ id: h.id, url: r.url, events: ['member.*', 'project.created', 'endpoint.*'], enabled: true })]);
    expect(JSON.stringify(listed.body)).not.toContain(h.secret);

    await t.request('POST', '/v1/orgs/invitations', { body: { email: 'gina@corp.example', role: 'viewer' } });
    await until('member.invited', () => r.got.length >= 1);
    const wh = new Webhook(h.secret);
    const first = r.got[0];
    const event = wh.verify(first.body, first.headers as Record<string, string>) as any;
    expect(event).toMatchObject({ type: 'member.invited', data: { email: 'gina@corp.example', role: 'viewer' } });
    expect(first.headers['webhook-id']).toMatch(/^whd-/);
    // A tampered body or another secret does not verify.
    expect(() => wh.verify(first.body.replace('gina', 'mallory'), first.headers as Record<string, string>)).toThrow();
    expect(() => new Webhook(`whsec_${Buffer.alloc(24, 1).toString('base64')}`).verify(first.body, first.headers as Record<string, string>)).toThrow();

    // An operation's end goes through the outbox: project.created once the project is ready.
    const p = await t.request('POST', '/v1/projects', { body: { name: 'hooked' } });
    expect(p.status).toBe(201);
    const created = await until('project.created', () => r.got.map((g) => JSON.parse(g.body)).find((e) => e.type === 'project.created'));
    expect(created.data).toMatchObject({ project_id: p.body.id, operation: 'project.create' });
    expect(wh.verify(r.got.find((g) => g.body.includes('project.created'))!.body, r.got.find((g) => g.body.includes('project.created'))!.headers as Record<string, string>)).toBeTruthy();
    const s = await t.request('POST', `/v1/projects/${p.body.id}/endpoints/${p.body.endpoint_id}/suspend`);
    expect(s.status).toBe(200);
    const suspended = await until('endpoint.suspended', () => r.got.map((g) => JSON.parse(g.body)).find((e) => e.type === 'endpoint.suspended'));
    expect(suspended.data).toMatchObject({ project_id: p.body.id, endpoint_id: p.body.endpoint_id });
    // A client through the proxy wakes it without an operation: announced all the same.
    const c = new Client({
      host: '127.0.0.1',
      port: p.body.port,
      user: 'cloud_admin',
      password: p.body.pg_password,
      database: `${p.body.endpoint_id}.postgres`,
      ssl: { ca: fs.readFileSync(proxyCaFile(t), 'utf8') },
    });
    await c.connect();
    await c.end();
    const resumed = await until('endpoint.resumed', () => r.got.map((g) => JSON.parse(g.body)).find((e) => e.type === 'endpoint.resumed'));
    expect(resumed.data).toMatchObject({ endpoint_id: p.body.endpoint_id, detail: { via: 'proxy' } });
    // Filtered: an API key event is not among its subscriptions.
    await t.request('POST', '/v1/orgs/api-keys', { body: { name: 'not-subscribed' } });
    const d = await until('deliveries recorded', async () => {
      const list = await deliveries(h.id);
      return list.length === 4 && list.every((x) => x.status === 'delivered') ? list : undefined;
    });
    expect(d.map((x) => x.event_type).sort()).toEqual(['endpoint.resumed', 'endpoint.suspended', 'member.invited', 'project.created']);
    expect(d[0]).toMatchObject({ attempts: [expect.objectContaining({ attempt: 1, status: 204, error: null })], workflow_id: `webhook-delivery/${d[0].id}` });
    await t.request('DELETE', `/v1/orgs/webhooks/${h.id}`);
    await r.close();
  });

  it('retries a failing receiver with backoff until it answers 2xx, across a restart of the stack', async () => {
    let healthy = false;
    const r = await receiver(() => (healthy ? 200 : 503));
    const h = await hook(r.url, ['api_key.created']);
    await t.request('POST', '/v1/orgs/api-keys', { body: { name: 'retried' } });
    await until('two failed attempts', () => r.got.length >= 2);
    const [d] = await deliveries(h.id);
    expect(d.status).toBe('pending');
    expect(d.attempts[0]).toMatchObject({ attempt: 1, status: 503, error: expect.stringContaining('HTTP 503') });
    // The worker (and the API) stop mid-retry and start again; Temporal still holds the retry.
    await t.restart();
    const before = r.got.length;
    healthy = true;
    const done = await until('delivered after the restart', async () => {
      const [x] = await deliveries(h.id);
      return x.status === 'delivered' ? x : undefined;
    });
    expect(r.got.length).toBeGreaterThan(before);
    expect(done.attempts.length).toBe(r.got.length);
    expect(done.attempts.at(-1)).toMatchObject({ status: 200, error: null });
    // Every attempt carried the same webhook-id (what a receiver deduplicates on), each signed anew.
    expect(new Set(r.got.map((g) => g.headers['webhook-id'])).size).toBe(1);
    const wh = new Webhook(h.secret);
    for (const g of r.got) expect(wh.verify(g.body, g.headers as Record<string, string>)).toMatchObject({ type: 'api_key.created' });
    await t.request('DELETE', `/v1/orgs/webhooks/${h.id}`);
    await r.close();
  });

  it('a disabled webhook receives nothing, its pending retries included', async () => {
    const r = await receiver(() => 500);
    const h = await hook(r.url, ['*']);
    await t.request('POST', '/v1/orgs/api-keys', { body: { name: 'first' } });
    await until('a failed attempt', () => r.got.length >= 1);
    const off = await t.request('PATCH', `/v1/orgs/webhooks/${h.id}`, { body: { enabled: false } });
    expect(off.body).toMatchObject({ id: h.id, enabled: false });
    const [pending] = await deliveries(h.id);
    await until('the pending delivery cancelled', async () => ((await deliveries(h.id)).find((x) => x.id === pending.id).status === 'cancelled' ? true : undefined));
    const seen = r.got.length;
    await t.request('POST', '/v1/orgs/api-keys', { body: { name: 'second' } });
    await new Promise((res) => setTimeout(res, 2500));
    expect(r.got.length).toBe(seen);
    expect((await deliveries(h.id)).length).toBe(1);
    await r.close();
  });

  it('validates URLs and events, refusing private targets unless the deployment allows them', async () => {
    const bad = async (body: unknown) => (await t.request('POST', '/v1/orgs/webhooks', { body })).status;
    expect(await bad({ url: 'ftp://example.com/x', events: ['*'] })).toBe(422);
    expect(await bad({ url: 'https://user:pw@example.com/x' })).toBe(422);
    expect(await bad({ url: 'https://example.com/x', events: ['project.exploded'] })).toBe(422);
    expect(await bad({ url: 'https://example.com/x', events: [] })).toBe(422);
    expect(await bad({ url: 'https://example.com/\u0000' })).toBe(422);
    const cfg = t.stack.config.webhooks;
    cfg.allowPrivate = false;
    try {
      for (const url of ['http://127.0.0.1:9/x', 'http://[::1]/x', 'http://10.1.2.3/x', 'http://169.254.169.254/latest', 'http://localhost:8080/', 'http://[::ffff:127.0.0.1]/']) {
        const res = await t.request('POST', '/v1/orgs/webhooks', { body: { url } });
        expect([url, res.status]).toEqual([url, 422]);
      }
      expect(await bad({ url: 'https://hooks.example.com/x', events: ['branch.*'] })).toBe(201);
    } finally {
      cfg.allowPrivate = true;
    }
    expect((await t.request('GET', '/v1/orgs/webhooks', { key: await t.key('developer') })).status).toBe(403);
    expect((await t.request('PATCH', '/v1/orgs/webhooks/wh-doesnotexist', { body: { enabled: false } })).status).toBe(404);
    expect((await t.request('PATCH', '/v1/orgs/webhooks/wh-doesnotexist', { body: {} })).status).toBe(422);
  });
});
