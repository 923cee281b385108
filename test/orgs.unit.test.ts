import { inviteRefusal, invitationState, keyRole, removalRefusal, roleChangeRefusal, transferRefusal } from '../src/domain/members';
import { eventFilterProblem, isPrivateAddress, operationEvent, subscribes, webhookUrlProblem, workflowResource } from '../src/domain/webhooks';
import { lowerRole } from '../src/domain/rbac';

describe('organization rules', () => {
  it('only owners grant owner or touch owners, and the last owner stays', () => {
    expect(roleChangeRefusal({ actor: 'admin', current: 'developer', next: 'owner', owners: 1 })?.status).toBe(403);
    expect(roleChangeRefusal({ actor: 'admin', current: 'owner', next: 'admin', owners: 2 })?.status).toBe(403);
    expect(roleChangeRefusal({ actor: 'owner', current: 'owner', next: 'admin', owners: 1 })?.status).toBe(409);
    expect(roleChangeRefusal({ actor: 'owner', current: 'owner', next: 'admin', owners: 2 })).toBeUndefined();
    expect(roleChangeRefusal({ actor: 'admin', current: 'developer', next: 'analyst', owners: 1 })).toBeUndefined();
    expect(removalRefusal({ actor: 'owner', current: 'owner', owners: 1 })?.status).toBe(409);
    expect(removalRefusal({ actor: 'admin', current: 'owner', owners: 3 })?.status).toBe(403);
    expect(removalRefusal({ actor: 'admin', current: 'viewer', owners: 1 })).toBeUndefined();
    expect(inviteRefusal({ actor: 'admin', role: 'owner' })?.status).toBe(403);
    expect(inviteRefusal({ actor: 'owner', role: 'owner' })).toBeUndefined();
    expect(transferRefusal({ targetMemberId: 'usr-a' })?.status).toBe(403);
    expect(transferRefusal({ actorMemberId: 'usr-a', targetMemberId: 'usr-a' })?.status).toBe(422);
  });

  it('gives new keys at most the creator’s role, developer by default', () => {
    expect(keyRole({ creator: 'owner' })).toEqual({ role: 'developer' });
    expect(keyRole({ creator: 'viewer' })).toEqual({ role: 'viewer' });
    expect(keyRole({ creator: 'developer', requested: 'admin' })).toMatchObject({ status: 403 });
    expect(keyRole({ creator: 'admin', requested: 'analyst' })).toEqual({ role: 'analyst' });
    expect(lowerRole('owner', 'viewer')).toBe('viewer');
    expect(lowerRole('analyst', 'admin')).toBe('analyst');
  });

  it('tells an invitation’s state', () => {
    const now = new Date('2026-12-02T12:00:00Z');
    const later = new Date('2026-12-03T12:00:00Z');
    expect(invitationState({ accepted_at: null, cancelled_at: null, expires_at: later }, now)).toBe('pending');
    expect(invitationState({ accepted_at: null, cancelled_at: null, expires_at: now }, now)).toBe('expired');
    expect(invitationState({ accepted_at: now, cancelled_at: null, expires_at: now }, now)).toBe('accepted');
    expect(invitationState({ accepted_at: null, cancelled_at: now, expires_at: later }, now)).toBe('cancelled');
  });
});

describe('webhook rules', () => {
  it('filters events by name, family or *', () => {
    expect(subscribes(['*'], 'branch.created')).toBe(true);
    expect(subscribes(['branch.*'], 'branch.reset')).toBe(true);
    expect(subscribes(['branch.*'], 'backup.created')).toBe(false);
    expect(subscribes(['project.created'], 'project.deleted')).toBe(false);
    expect(eventFilterProblem('member.*')).toBeUndefined();
    expect(eventFilterProblem('nope.*')).toMatch(/unknown event/);
    expect(eventFilterProblem('branch.exploded')).toMatch(/unknown event/);
    expect(eventFilterProblem('*.*')).toMatch(/unknown event/);
  });

  it('maps operation ends to events', () => {
    // Announced by the state change itself (setEndpointState), not by the operation's end.
    expect(operationEvent('endpoint.auto-suspend', 'succeeded', null)).toBeUndefined();
    expect(operationEvent('branch.expire', 'succeeded', null)).toBe('branch.expired');
    expect(operationEvent('import.start', 'failed', null)).toBe('import.failed');
    expect(operationEvent('project.create', 'failed', null)).toBeUndefined();
    expect(operationEvent('branch.anonymization', 'succeeded', { action: 'apply' }, { enabled: true, transition: 'enabled' })).toBe('anonymization.enabled');
    expect(operationEvent('branch.anonymization', 'succeeded', { action: 'apply' }, { enabled: true })).toBeUndefined();
    expect(operationEvent('branch.merge', 'succeeded', { dry_run: true })).toBeUndefined();
    expect(operationEvent('endpoint.autoscale', 'succeeded', null)).toBeUndefined();
    expect(workflowResource('endpoint-state/ep-abc')).toEqual({ endpoint_id: 'ep-abc' });
    expect(workflowResource('branch/br-x')).toEqual({ branch_id: 'br-x' });
  });

  it('refuses the platform’s own network unless allowed', () => {
    for (const ip of ['127.0.0.1', '10.0.0.8', '172.20.1.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', 'fe80::1', 'fd00::1', '::ffff:127.0.0.1', '224.0.0.1', 'not-an-ip']) {
      expect([ip, isPrivateAddress(ip)]).toEqual([ip, true]);
    }
    for (const ip of ['93.184.216.34', '8.8.8.8', '2606:4700::1111']) expect([ip, isPrivateAddress(ip)]).toEqual([ip, false]);
    expect(webhookUrlProblem('https://hooks.example.com/x', false)).toBeUndefined();
    expect(webhookUrlProblem('http://127.0.0.1:8080/x', false)).toMatch(/private or loopback/);
    expect(webhookUrlProblem('http://127.0.0.1:8080/x', true)).toBeUndefined();
    expect(webhookUrlProblem('http://[::1]/x', false)).toMatch(/private or loopback/);
    expect(webhookUrlProblem('http://db.internal/x', false)).toMatch(/own network/);
    expect(webhookUrlProblem('file:///etc/passwd', true)).toMatch(/http/);
    expect(webhookUrlProblem('https://u:p@example.com/', true)).toMatch(/credentials/);
    expect(webhookUrlProblem('not a url', true)).toBe('not a URL');
  });
});

describe('project-scoped keys', () => {
  const { projectScopeRefusal, scopeOfNewKey } = require('../src/domain/keyScope');
  it('reaches its projects, the project list, plans and its keys; nothing else', () => {
    const ids = ['prj-a'];
    expect(projectScopeRefusal({ method: 'get', path: '/v1/projects/{project_id}/branches', projectId: 'prj-a', projectIds: ids })).toBeUndefined();
    expect(projectScopeRefusal({ method: 'delete', path: '/v1/projects/{project_id}', projectId: 'prj-b', projectIds: ids })).toEqual({ status: 404 });
    expect(projectScopeRefusal({ method: 'get', path: '/v1/projects', projectIds: ids })).toBeUndefined();
    expect(projectScopeRefusal({ method: 'post', path: '/v1/projects', projectIds: ids })?.status).toBe(403);
    expect(projectScopeRefusal({ method: 'get', path: '/v1/orgs/audit-log', projectIds: ids })?.status).toBe(403);
    expect(projectScopeRefusal({ method: 'delete', path: '/v1/orgs/api-keys/{key_id}', projectIds: ids })).toBeUndefined();
  });
  it('never widens a scope', () => {
    expect(scopeOfNewKey(undefined, undefined)).toEqual({ projectIds: null });
    expect(scopeOfNewKey(undefined, ['prj-a', 'prj-a'])).toEqual({ projectIds: ['prj-a'] });
    expect(scopeOfNewKey(['prj-a'], undefined)).toEqual({ projectIds: ['prj-a'] });
    expect(scopeOfNewKey(['prj-a'], ['prj-a', 'prj-b'])).toEqual({ refused: ['prj-b'] });
  });
});
