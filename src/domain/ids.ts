import { randomBytes } from 'node:crypto';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** Random lowercase alphanumerics: ids double as DNS labels (SNI routing) and database-name prefixes. */
export function randomToken(length: number, alphabet = ALPHABET): string {
  const out: string[] = [];
  // Rejection sampling keeps every character equally likely.
  const limit = 256 - (256 % alphabet.length);
  while (out.length < length) {
    for (const b of randomBytes(length * 2)) {
      if (b < limit && out.length < length) out.push(alphabet[b % alphabet.length]);
    }
  }
  return out.join('');
}

export const ID_PREFIX = {
  org: 'org',
  project: 'prj',
  branch: 'br',
  endpoint: 'ep',
  operation: 'op',
  apiKey: 'key',
  member: 'usr',
  invitation: 'inv',
  webhook: 'wh',
  delivery: 'whd',
  event: 'evt',
  seed: 'seed',
  maskingRule: 'amr',
  backup: 'bk',
  base: 'base',
} as const;

export type IdKind = keyof typeof ID_PREFIX;

export function newId(kind: IdKind): string {
  return `${ID_PREFIX[kind]}-${randomToken(12)}`;
}

export function idPattern(kind: IdKind): RegExp {
  return new RegExp(`^${ID_PREFIX[kind]}-[a-z0-9]{4,40}$`);
}

/** Endpoint ids as accepted by the proxy (database prefix, SNI label, options). */
export const ENDPOINT_ID_RE = /^ep-[a-z0-9][a-z0-9-]{1,60}$/;
