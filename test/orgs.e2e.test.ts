import { Client } from 'pg';
import { startTestStack, TestStack } from './support/stack';

/** Members, invitations, API keys and the audit log of one organization. */
describe('organization: members, invitations, API keys, audit log', () => {
  let t: TestStack;
  let ownerId: string;

  beforeAll(async () => {
    t = await startTestStack();
    const members = await t.request('GET', '/v1/orgs/members');
    expect(members.status).toBe(200);
    ownerId = members.body.find((m: any) => m.role === 'owner').user_id;
  });
  afterAll(async () => {
    await t?.stop();
  });

  const invite = async (email: string, role: string, key?: string) => t.request('POST', '/v1/orgs/invitations', { key, body: { email, role } });

  it('invites, accepts once with the token, and the new member authenticates with their own key', async () => {
    const inv = await invite('carol@corp.example', 'developer');
    expect(inv.status).toBe(201);
    expect(inv.body).toMatchObject({ id: expect.stringMatching(/^inv-/), email: 'carol@corp.example', role: 'developer', status: 'pending', token: expect.stringMatching(/^lmp_inv_/) });
    const pending = await t.request('GET', '/v1/orgs/invitations');
    expect(pending.body.map((i: any) => i.id)).toContain(inv.body.id);
    expect(pending.body[0].token).toBeUndefined();

    const accepted = await t.request('POST', '/v1/orgs/invitations/accept', { key: null, body: { token: inv.body.token } });
    expect(accepted.status).toBe(201);
    expect(accepted.body).toMatchObject({ user_id: expect.stringMatching(/^usr-/), email: 'carol@corp.example', role: 'developer', api_key: { key: expect.stringMatching(/^lmp_live_/) } });
    const carol = accepted.body.api_key.key;
    expect((await t.request('GET', '/v1/projects', { key: carol })).status).toBe(200);
    expect((await t.request('POST', '/v1/orgs/invitations/accept', { key: null, body: { token: inv.body.token } })).status).toBe(410);
    const members = await t.request('GET', '/v1/orgs/members');
    expect(members.body).toEqual(expect.arrayContaining([expect.objectContaining({ user_id: accepted.body.user_id, email: 'carol@corp.example', role: 'developer' })]));
    expect(members.headers.get('x-total-count')).toBe(String(members.body.length));
    expect((await t.request('GET', '/v1/orgs/invitations')).body.map((i: any) => i.id)).not.toContain(inv.body.id);
  });

  it('refuses a cancelled, an expired or an unknown token, and a malformed one with 422', async () => {
    const inv = await invite('dave@corp.example', 'viewer');
    expect((await t.request('DELETE', `/v1/orgs/invitations/${inv.body.id}`)).status).toBe(204);
    expect((await t.request('DELETE', `/v1/orgs/invitations/${inv.body.id}`)).status).toBe(409);
    const cancelled = await t.request('POST', '/v1/orgs/invitations/accept', { key: null, body: { token: inv.body.token } });
    expect(cancelled.status).toBe(410);
    expect(cancelled.body.error.message).toMatch(/cancelled/);
    const old = await invite('erin@corp.example', 'viewer');
    await t.stack.db.updateTable('invitations').set({ expires_at: new Date(Date.now() - 1000) }).where('id', '=', old.body.id).execute();
    const expired = await t.request('POST', '/v1/orgs/invitations/accept', { key: null, body: { token: old.body.token } });
    expect(expired.status).toBe(410);
    expect(expired.body.error.message).toMatch(/expired/);
    expect((await t.request('POST', '/v1/orgs/invitations/accept', { key: null, body: { token: `lmp_inv_${'x'.repeat(32)}` } })).status).toBe(404);
    expect((await t.request('POST', '/v1/orgs/invitations/accept', { key: null, body: { token: 'nope' } })).status).toBe(422);
    expect((await invite('not-an-email', 'viewer')).status).toBe(422);
    expect((await invite('x\u0000@corp.example', 'viewer')).status).toBe(422);
    const count = await t.stack.db.selectFrom('members').select(t.stack.db.fn.countAll<string>().as('n')).where('email', 'in', ['dave@corp.example', 'erin@corp.example']).executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(0);
  });

  it('keeps the ownership rules: admins cannot grant owner or touch an owner, the last owner stays', async () => {
    const admin = await t.member('admin');
    const dev = await t.member('developer');
    // An admin may not make owners, by role change or invitation.
    expect((await t.request('PATCH', `/v1/orgs/members/${dev.memberId}/role`, { key: admin.key, body: { role: 'owner' } })).status).toBe(403);
    expect((await invite('olga@corp.example', 'owner', admin.key)).status).toBe(403);
    expect((await t.request('PATCH', `/v1/orgs/members/${ownerId}/role`, { key: admin.key, body: { role: 'viewer' } })).status).toBe(403);
    expect((await t.request('DELETE', `/v1/orgs/members/${ownerId}`, { key: admin.key })).status).toBe(403);
    // The last owner can neither be demoted nor removed, even by themselves.
    const demote = await t.request('PATCH', `/v1/orgs/members/${ownerId}/role`, { body: { role: 'admin' } });
    expect(demote.status).toBe(409);
    expect(demote.body.error.message).toMatch(/last owner/);
    expect((await t.request('DELETE', `/v1/orgs/members/${ownerId}`)).status).toBe(409);
    // An admin changes a developer's role, and the developer's key acts with it at once.
    expect((await t.request('POST', '/v1/projects', { key: dev.key, body: { name: 'x\u0000' } })).status).toBe(422);
    const changed = await t.request('PATCH', `/v1/orgs/members/${dev.memberId}/role`, { key: admin.key, body: { role: 'viewer' } });
    expect(changed.body).toEqual({ user_id: dev.memberId, role: 'viewer' });
    expect((await t.request('POST', '/v1/projects', { key: dev.key, body: { name: 'nope' } })).status).toBe(403);
    // Only owners transfer ownership.
    expect((await t.request('POST', '/v1/orgs/transfer-ownership', { key: admin.key, body: { user_id: admin.memberId } })).status).toBe(403);
  });

  it('transfers ownership: the target becomes owner, the caller admin', async () => {
    const first = await t.member('owner');
    const heir = await t.member('developer');
    expect((await t.request('POST', '/v1/orgs/transfer-ownership', { key: first.key, body: { user_id: first.memberId } })).status).toBe(422);
    const res = await t.request('POST', '/v1/orgs/transfer-ownership', { key: first.key, body: { user_id: heir.memberId } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true });
    const roles = Object.fromEntries((await t.request('GET', '/v1/orgs/members?limit=100')).body.map((m: any) => [m.user_id, m.role]));
    expect(roles[heir.memberId]).toBe('owner');
    expect(roles[first.memberId]).toBe('admin');
    expect((await t.request('GET', '/v1/orgs/audit-log', { key: first.key })).status).toBe(403);
    expect((await t.request('GET', '/v1/orgs/audit-log', { key: heir.key })).status).toBe(200);
  });

  it('removes a member: every key of theirs answers 401 at once', async () => {
    const leaving = await t.member('developer');
    expect((await t.request('GET', '/v1/projects', { key: leaving.key })).status).toBe(200);
    expect((await t.request('DELETE', `/v1/orgs/members/${leaving.memberId}`)).status).toBe(204);
    const after = await t.request('GET', '/v1/projects', { key: leaving.key });
    expect(after.status).toBe(401);
    expect(after.body.error.message).toMatch(/removed/);
    expect((await t.request('DELETE', `/v1/orgs/members/${leaving.memberId}`)).status).toBe(404);
  });

  it('creates keys no higher than their creator, shows them truncated, and a revoked or expired key answers 401', async () => {
    const dev = await t.member('developer');
    const created = await t.request('POST', '/v1/orgs/api-keys', { key: dev.key, body: { name: 'CI/CD' } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: expect.stringMatching(/^key-/), name: 'CI/CD', role: 'developer', key: expect.stringMatching(/^lmp_live_[A-Za-z0-9]{32}$/), user_id: dev.memberId });
    expect(new Date(created.body.expires_at).getTime() - Date.now()).toBeGreaterThan(89 * 86_400_000);
    expect((await t.request('POST', '/v1/orgs/api-keys', { key: dev.key, body: { name: 'too high', role: 'admin' } })).status).toBe(403);
    const viewer = await t.member('viewer');
    const low = await t.request('POST', '/v1/orgs/api-keys', { key: viewer.key, body: { name: 'mine', expires_in_days: 1 } });
    expect(low.body.role).toBe('viewer');

    const list = await t.request('GET', '/v1/orgs/api-keys', { key: dev.key });
    expect(list.status).toBe(200);
    expect(list.body.map((k: any) => k.id).sort()).toEqual([dev.keyId, created.body.id].sort());
    const shown = list.body.find((k: any) => k.id === created.body.id);
    expect(shown.prefix).toMatch(/^lmp_live_\w{4}\.\.\.$/);
    expect(JSON.stringify(list.body)).not.toContain(created.body.key);
    expect(shown).toHaveProperty('last_used_at');
    // The new key works; a developer cannot revoke someone else's key (not found to them).
    expect((await t.request('GET', '/v1/projects', { key: created.body.key })).status).toBe(200);
    expect((await t.request('DELETE', `/v1/orgs/api-keys/${low.body.id}`, { key: dev.key })).status).toBe(404);
    expect((await t.request('DELETE', `/v1/orgs/api-keys/${created.body.id}`, { key: dev.key })).status).toBe(204);
    const revoked = await t.request('GET', '/v1/projects', { key: created.body.key });
    expect(revoked.status).toBe(401);
    expect(revoked.body.error.message).toMatch(/revoked/);
    // Admins see every key of the organization.
    const all = await t.request('GET', '/v1/orgs/api-keys?limit=100');
    expect(all.body.map((k: any) => k.id)).toEqual(expect.arrayContaining([dev.keyId, low.body.id]));
    const expired = await t.key('developer', { expired: true });
    expect((await t.request('GET', '/v1/projects', { key: expired })).status).toBe(401);
  });

  it('a project-scoped key sees only its projects; other projects are 404 and organization routes 403', async () => {
    const a = (await t.request('POST', '/v1/projects', { body: { name: 'scoped-a' } })).body;
    const b = (await t.request('POST', '/v1/projects', { body: { name: 'scoped-b' } })).body;
    const made = await t.request('POST', '/v1/orgs/api-keys', { body: { name: 'only a', project_ids: [a.id] } });
    expect(made.status).toBe(201);
    expect(made.body.project_ids).toEqual([a.id]);
    const key = made.body.key;
    const list = await t.request('GET', '/v1/projects', { key });
    expect(list.body.map((p: any) => p.id)).toEqual([a.id]);
    expect(list.headers.get('x-total-count')).toBe('1');
    expect((await t.request('GET', `/v1/projects/${a.id}/branches`, { key })).status).toBe(200);
    expect((await t.request('GET', `/v1/projects/${b.id}`, { key })).status).toBe(404);
    expect((await t.request('GET', `/v1/projects/${b.id}/branches`, { key })).status).toBe(404);
    expect((await t.request('POST', `/v1/projects/${b.id}/branches`, { key, body: { name: 'nope' } })).status).toBe(404);
    expect((await t.request('POST', '/v1/projects', { key, body: { name: 'new' } })).status).toBe(403);
    expect((await t.request('GET', '/v1/orgs/members', { key })).status).toBe(403);
    expect((await t.request('GET', '/v1/usage', { key })).status).toBe(403);
    // It cannot widen itself: a key it makes sees at most its projects (by default exactly them).
    expect((await t.request('POST', '/v1/orgs/api-keys', { key, body: { name: 'wider', project_ids: [a.id, b.id] } })).status).toBe(403);
    const child = await t.request('POST', '/v1/orgs/api-keys', { key, body: { name: 'child' } });
    expect(child.body.project_ids).toEqual([a.id]);
    // It sees its own scoped keys only, not the organization's others.
    const keys = await t.request('GET', '/v1/orgs/api-keys', { key });
    expect(keys.body.map((k: any) => k.id).sort()).toEqual([made.body.id, child.body.id].sort());
    expect((await t.request('POST', '/v1/orgs/api-keys', { body: { name: 'ghost', project_ids: ['prj-doesnotexist00'] } })).status).toBe(404);
    for (const p of [a, b]) expect((await t.request('DELETE', `/v1/projects/${p.id}`)).status).toBeLessThan(300);
  });

  it('audits actions and refused attempts, newest first, for owners only; the catalog role cannot edit it', async () => {
    const viewer = await t.member('viewer');
    const refused = await t.request('POST', '/v1/projects', { key: viewer.key, body: { name: 'not-allowed' } });
    expect(refused.status).toBe(403);
    const inv = await invite('frank@corp.example', 'viewer');
    const log = await t.request('GET', '/v1/orgs/audit-log?limit=5');
    expect(log.status).toBe(200);
    expect(Number(log.headers.get('x-total-count'))).toBeGreaterThan(5);
    expect(log.body.length).toBe(5);
    expect(log.body[0]).toMatchObject({ action: 'invitation.create', actor: 'owner@localhost', target: inv.body.id, outcome: 'succeeded', status: 201, request_id: expect.any(String) });
    expect(log.body[1]).toMatchObject({ action: 'project.create', actor: viewer.email, outcome: 'refused', status: 403 });
    expect(Number(log.body[0].id)).toBeGreaterThan(Number(log.body[1].id));
    expect((await t.request('GET', '/v1/orgs/audit-log', { key: await t.key('admin') })).status).toBe(403);
    // Append-only in the database: the API's own catalog role cannot change or remove entries.
    const url = t.env.DATABASE_URL;
    const c = new Client({ connectionString: url });
    await c.connect();
    try {
      await expect(c.query("UPDATE audit_log SET actor = 'someone else'")).rejects.toThrow(/permission denied|append-only/);
      await expect(c.query('DELETE FROM audit_log')).rejects.toThrow(/permission denied|append-only/);
      await expect(c.query('TRUNCATE audit_log')).rejects.toThrow(/permission denied|append-only/);
    } finally {
      await c.end();
    }
    // And through the API's own pool too.
    await expect(t.stack.db.updateTable('audit_log').set({ actor: 'x' }).execute()).rejects.toThrow(/permission denied|append-only/);
  });
});
