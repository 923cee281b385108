import type Koa from 'koa';
import { RateLimiterRes } from 'rate-limiter-flexible';
import { API_KEY_RE, hashApiKey, parseBearer } from '../domain/apiKeys';
import { Action, isAllowed, POLICY, Role } from '../domain/rbac';
import { ApiError, forbidden, unauthorized } from './errors';
import type { ApiDeps } from './deps';

export interface AuthContext {
  orgId: string;
  keyId: string;
  role: Role;
}

/** API key → organization and role, then the policy table decides. */
export async function authorize(ctx: Koa.Context, deps: ApiDeps, action: Action): Promise<AuthContext> {
  const token = parseBearer(ctx.get('authorization'));
  if (!token) throw unauthorized('missing API key: send Authorization: Bearer lmp_live_...');
  if (!API_KEY_RE.test(token)) throw unauthorized('malformed API key');
  const hash = hashApiKey(token);
  let key = deps.caches.apiKeys.get(hash);
  if (!key) {
    key = await deps.db.selectFrom('api_keys').selectAll().where('key_hash', '=', hash).executeTakeFirst();
    if (key && !key.revoked_at) deps.caches.apiKeys.set(hash, key);
  }
  if (!key || key.revoked_at) throw unauthorized('invalid API key');
  if (new Date(key.expires_at).getTime() <= Date.now()) throw unauthorized('API key expired');
  try {
    await deps.rateLimiter.consume(key.id);
  } catch (err) {
    if (err instanceof RateLimiterRes) {
      const retry = Math.max(1, Math.ceil(err.msBeforeNext / 1000));
      throw new ApiError(429, 'rate_limited', `too many requests; retry in ${retry}s`, { retry_after_seconds: retry }, { 'Retry-After': String(retry) });
    }
    throw err;
  }
  if (!isAllowed(key.role, action)) {
    throw forbidden(`role ${key.role} may not perform ${action} (requires ${POLICY[action]} or above)`);
  }
  const auth = { orgId: key.org_id, keyId: key.id, role: key.role };
  ctx.state.auth = auth;
  return auth;
}
