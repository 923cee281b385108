import { hasRole, Role } from './rbac';

/** Why a change of who is in the organization is refused: the status it answers and why. */
export interface Refusal {
  status: 403 | 409 | 422;
  message: string;
}

const forbid = (message: string): Refusal => ({ status: 403, message });

/**
 * The ownership rules users expect: only an owner grants owner or touches an owner, and an
 * organization never loses its last owner.
 */
export function roleChangeRefusal(o: { actor: Role; current: Role; next: Role; owners: number }): Refusal | undefined {
  if (o.next === 'owner' && o.actor !== 'owner') return forbid('only an owner can grant the owner role');
  if (o.current === 'owner' && o.actor !== 'owner') return forbid("only an owner can change an owner's role");
  if (o.current === 'owner' && o.next !== 'owner' && o.owners <= 1) {
    return { status: 409, message: 'the last owner cannot be demoted; transfer ownership first' };
  }
  return undefined;
}

export function removalRefusal(o: { actor: Role; current: Role; owners: number }): Refusal | undefined {
  if (o.current === 'owner' && o.actor !== 'owner') return forbid('only an owner can remove an owner');
  if (o.current === 'owner' && o.owners <= 1) return { status: 409, message: 'the last owner cannot be removed; transfer ownership first' };
  return undefined;
}

/** An invitation, like a role change, grants at most what the inviter has (owner only by an owner). */
export function inviteRefusal(o: { actor: Role; role: Role }): Refusal | undefined {
  if (o.role === 'owner' && o.actor !== 'owner') return forbid('only an owner can invite an owner');
  if (!hasRole(o.actor, o.role)) return forbid(`a ${o.actor} cannot invite a ${o.role}`);
  return undefined;
}

/** A new key: at most its creator's role; developer (the documented default) or less when the creator has less. */
export function keyRole(o: { creator: Role; requested?: Role }): { role: Role } | Refusal {
  if (o.requested === undefined) return { role: hasRole(o.creator, 'developer') ? 'developer' : o.creator };
  if (!hasRole(o.creator, o.requested)) return forbid(`a ${o.creator} cannot create a key with the ${o.requested} role`);
  return { role: o.requested };
}

export function transferRefusal(o: { actorMemberId?: string; targetMemberId: string }): Refusal | undefined {
  if (!o.actorMemberId) return forbid('this key belongs to no member; only an owner member can transfer ownership');
  if (o.actorMemberId === o.targetMemberId) return { status: 422, message: 'the member already owns the organization' };
  return undefined;
}

export type InvitationState = 'pending' | 'accepted' | 'cancelled' | 'expired';

export function invitationState(i: { accepted_at: Date | null; cancelled_at: Date | null; expires_at: Date }, now = new Date()): InvitationState {
  if (i.accepted_at) return 'accepted';
  if (i.cancelled_at) return 'cancelled';
  return new Date(i.expires_at).getTime() <= now.getTime() ? 'expired' : 'pending';
}
