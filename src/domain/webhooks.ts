import { BlockList, isIP } from 'node:net';
import { randomBytes } from 'node:crypto';

/** Every event a webhook can subscribe to (by name, by family `member.*`, or `*`). */
export const EVENT_TYPES = [
  'project.created',
  'project.deleted',
  'branch.created',
  'branch.reset',
  'branch.deleted',
  'branch.expired',
  'branch.merged',
  'endpoint.suspended',
  'endpoint.resumed',
  'backup.created',
  'restore.completed',
  'import.completed',
  'import.failed',
  'anonymization.enabled',
  'anonymization.disabled',
  'member.invited',
  'member.joined',
  'member.role_changed',
  'member.removed',
  'member.ownership_transferred',
  'api_key.created',
  'api_key.revoked',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

const FAMILIES = new Set(EVENT_TYPES.map((t) => t.split('.')[0]));

/** Why an `events` entry is not a subscription, or undefined. */
export function eventFilterProblem(f: string): string | undefined {
  if (f === '*' || (EVENT_TYPES as readonly string[]).includes(f)) return undefined;
  const m = /^([a-z_]+)\.\*$/.exec(f);
  if (m && FAMILIES.has(m[1])) return undefined;
  return `unknown event "${f}" (use "*", a family such as "branch.*", or one of ${EVENT_TYPES.join(', ')})`;
}

export function subscribes(filters: readonly string[], type: string): boolean {
  return filters.some((f) => f === '*' || f === type || (f.endsWith('.*') && type.startsWith(f.slice(0, -1))));
}

/**
 * The event an operation's end announces, if any. Scheduled and user-started operations of one
 * family announce the same event (an expiry is a branch.expired, a user's delete a
 * branch.deleted). A compute's suspend and wake are announced where its state changes
 * (setEndpointState), which a wake through the proxy passes without an operation.
 */
export function operationEvent(kind: string, status: 'succeeded' | 'failed', detail: Record<string, unknown> | null, result?: unknown): EventType | undefined {
  if (kind === 'import.start') return status === 'succeeded' ? 'import.completed' : 'import.failed';
  if (status !== 'succeeded') return undefined;
  const byKind: Record<string, EventType> = {
    'project.create': 'project.created',
    'project.delete': 'project.deleted',
    'branch.create': 'branch.created',
    'branch.reset': 'branch.reset',
    'branch.delete': 'branch.deleted',
    'branch.expire': 'branch.expired',
    'branch.merge': 'branch.merged',
    'backup.create': 'backup.created',
    'branch.restore': 'restore.completed',
    'branch.restore-in-place': 'restore.completed',
  };
  if (kind === 'branch.anonymization') {
    const transition = (result as { transition?: string } | undefined)?.transition;
    return transition === 'enabled' ? 'anonymization.enabled' : transition === 'disabled' ? 'anonymization.disabled' : undefined;
  }
  if (kind === 'branch.merge' && detail?.dry_run) return undefined;
  return byKind[kind];
}

/** The resource ids an operation's workflow id names (`branch/br-…`, `endpoint-state/ep-…`). */
export function workflowResource(workflowId: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of workflowId.split('/').slice(1)) {
    if (part.startsWith('br-')) out.branch_id = part;
    else if (part.startsWith('ep-')) out.endpoint_id = part;
    else if (part.startsWith('prj-')) out.project_id = part;
  }
  return out;
}

/** A Standard Webhooks secret: whsec_ and 24 random bytes in base64. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

const PRIVATE = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  PRIVATE.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96],
] as const) {
  PRIVATE.addSubnet(net, bits, 'ipv6');
}

/** Loopback, private, link-local, CGNAT, multicast or reserved: the platform's own network. */
export function isPrivateAddress(ip: string): boolean {
  const family = isIP(ip);
  if (family === 0) return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return isPrivateAddress(mapped[1]);
  return PRIVATE.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

/** Why a target URL is refused as written (addresses are checked again when it is resolved), or undefined. */
export function webhookUrlProblem(raw: string, allowPrivate: boolean): string | undefined {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return 'not a URL';
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return 'must be http:// or https://';
  if (u.username || u.password) return 'must not carry credentials; the signature authenticates the sender';
  if (u.hash) return 'must not have a #fragment';
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (!allowPrivate) {
    if (isIP(host) && isPrivateAddress(host)) return `${host} is a private or loopback address (LAMPION_WEBHOOK_ALLOW_PRIVATE is off)`;
    if (/^localhost$|\.localhost$|\.local$|\.internal$/i.test(host)) return `${host} names the platform's own network (LAMPION_WEBHOOK_ALLOW_PRIVATE is off)`;
  }
  return undefined;
}
