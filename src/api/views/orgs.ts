import { z } from 'zod';
import '../zod';
import type { ApiKeyRow, DeliveryRow, InvitationRow, MemberRow, WebhookRow } from '../../db';
import type { Selectable } from 'kysely';
import type { AuditLogTable, WebhookAttemptsTable } from '../../db/schema';
import { ROLES } from '../../domain/rbac';
import { invitationState } from '../../domain/members';

const iso = (d: Date | string | null | undefined) => (d ? new Date(d).toISOString() : null);
const role = z.enum(ROLES);

export const memberSchema = z.object({ user_id: z.string(), email: z.string(), role, created_at: z.string() }).openapi('Member');
export function memberView(m: MemberRow) {
  return { user_id: m.id, email: m.email, role: m.role, created_at: iso(m.created_at)! } satisfies z.infer<typeof memberSchema>;
}

export const invitationSchema = z
  .object({
    id: z.string(),
    email: z.string(),
    role,
    status: z.enum(['pending', 'accepted', 'cancelled', 'expired']),
    created_at: z.string(),
    expires_at: z.string(),
  })
  .openapi('Invitation');
export function invitationView(i: InvitationRow) {
  return {
    id: i.id,
    email: i.email,
    role: i.role,
    status: invitationState(i),
    created_at: iso(i.created_at)!,
    expires_at: iso(i.expires_at)!,
  } satisfies z.infer<typeof invitationSchema>;
}

export const apiKeySchema = z
  .object({
    id: z.string(),
    name: z.string(),
    prefix: z.string(),
    role,
    user_id: z.string().nullable(),
    project_ids: z.array(z.string()).nullable().openapi({ description: 'The projects a project-scoped key sees; null: the whole organization' }),
    created_at: z.string(),
    expires_at: z.string(),
    last_used_at: z.string().nullable(),
  })
  .openapi('ApiKey');
export function apiKeyView(k: ApiKeyRow) {
  return {
    id: k.id,
    name: k.name,
    prefix: k.prefix,
    role: k.role,
    user_id: k.member_id,
    project_ids: k.project_ids,
    created_at: iso(k.created_at)!,
    expires_at: iso(k.expires_at)!,
    last_used_at: iso(k.last_used_at),
  } satisfies z.infer<typeof apiKeySchema>;
}

export const auditEntrySchema = z
  .object({
    id: z.string(),
    action: z.string(),
    actor: z.string(),
    target: z.string().nullable(),
    outcome: z.enum(['succeeded', 'accepted', 'refused', 'failed', 'started']),
    status: z.number().nullable(),
    request_id: z.string().nullable(),
    details: z.unknown(),
    created_at: z.string(),
  })
  .openapi('AuditEntry');
export function auditEntryView(a: Selectable<AuditLogTable>) {
  return {
    id: String(a.id),
    action: a.action,
    actor: a.actor,
    target: a.target,
    outcome: a.outcome,
    status: a.status,
    request_id: a.request_id,
    details: a.details ?? null,
    created_at: iso(a.created_at)!,
  } satisfies z.infer<typeof auditEntrySchema>;
}

export const webhookSchema = z
  .object({ id: z.string(), url: z.string(), events: z.array(z.string()), enabled: z.boolean(), created_at: z.string() })
  .openapi('Webhook');
export function webhookView(w: WebhookRow) {
  return { id: w.id, url: w.url, events: w.events, enabled: w.enabled, created_at: iso(w.created_at)! } satisfies z.infer<typeof webhookSchema>;
}

const attemptSchema = z.object({ attempt: z.number(), status: z.number().nullable(), error: z.string().nullable(), duration_ms: z.number(), at: z.string() });
export const deliverySchema = z
  .object({
    id: z.string(),
    event_id: z.string(),
    event_type: z.string(),
    status: z.enum(['pending', 'delivered', 'failed', 'cancelled']),
    attempts: z.array(attemptSchema),
    created_at: z.string(),
    delivered_at: z.string().nullable(),
    workflow_id: z.string(),
  })
  .openapi('WebhookDelivery');
export function deliveryView(d: DeliveryRow, attempts: Selectable<WebhookAttemptsTable>[], workflowId: string) {
  return {
    id: d.id,
    event_id: d.event_id,
    event_type: d.event_type,
    status: d.status,
    attempts: attempts.map((a) => ({ attempt: a.attempt, status: a.status, error: a.error, duration_ms: a.duration_ms, at: iso(a.at)! })),
    created_at: iso(d.created_at)!,
    delivered_at: iso(d.delivered_at),
    workflow_id: workflowId,
  } satisfies z.infer<typeof deliverySchema>;
}
