import { createHash, timingSafeEqual } from 'node:crypto';
import { randomToken } from './ids';

const KEY_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
export const API_KEY_RE = /^lmp_live_[A-Za-z0-9]{32}$/;
const PREFIX_LENGTH = 'lmp_live_'.length + 4;

export function generateApiKey(): string {
  return `lmp_live_${randomToken(32, KEY_ALPHABET)}`;
}

/** An invitation's one-time token: as random as a key, told apart by its prefix; stored hashed like one. */
export const INVITATION_TOKEN_RE = /^lmp_inv_[A-Za-z0-9]{32}$/;

export function generateInvitationToken(): string {
  return `lmp_inv_${randomToken(32, KEY_ALPHABET)}`;
}

/**
 * Keys carry 190 bits of randomness, so a fast hash is enough: nothing to brute-force,
 * and lookup by hash stays an index probe.
 */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

export function displayPrefix(key: string): string {
  return `${key.slice(0, PREFIX_LENGTH)}...`;
}

export function parseBearer(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : undefined;
}

export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}

export function expiryFrom(now: Date, ttlDays: number): Date {
  return new Date(now.getTime() + ttlDays * 86_400_000);
}
