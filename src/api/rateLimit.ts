import type { Pool } from 'pg';
import { RateLimiterAbstract, RateLimiterMemory, RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible';
import { ApiError } from './errors';

export interface RateWindow {
  limit: number;
  remaining: number;
  /** Unix seconds when the window starts again. */
  reset: number;
}

/**
 * Requests per minute per API key, by the organization's plan. Counted in the control-plane
 * database (rate-limiter-flexible's Postgres store, table rate_limits), so every API instance
 * shares one count; without a pool (unit use) the count is this process's.
 */
export class RateLimits {
  private readonly limiters = new Map<number, RateLimiterAbstract>();

  constructor(
    private readonly perMinute: (plan: string) => number,
    private readonly pool?: Pool,
  ) {}

  private limiter(points: number): RateLimiterAbstract {
    let l = this.limiters.get(points);
    if (!l) {
      // One count per key and limit: a plan change starts a fresh window rather than inheriting one.
      const opts = { points, duration: 60, keyPrefix: `api${points}` };
      l = this.pool ? new RateLimiterPostgres({ ...opts, storeClient: this.pool, storeType: 'pool', tableName: 'rate_limits', tableCreated: true }) : new RateLimiterMemory(opts);
      this.limiters.set(points, l);
    }
    return l;
  }

  /** Counts one request, or throws 429 with Retry-After; either way the window's headers come back. */
  async consume(keyId: string, plan: string): Promise<RateWindow> {
    const limit = this.perMinute(plan);
    const window = (r: RateLimiterRes): RateWindow => ({
      limit,
      remaining: r.remainingPoints,
      reset: Math.ceil((Date.now() + Math.max(0, r.msBeforeNext)) / 1000),
    });
    try {
      return window(await this.limiter(limit).consume(keyId));
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err;
      const w = window(err);
      const retry = Math.max(1, Math.ceil(err.msBeforeNext / 1000));
      throw new ApiError(429, 'rate_limited', `more than ${limit} requests a minute for this key; retry in ${retry}s`, { retry_after_seconds: retry, limit }, {
        ...rateHeaders(w),
        'Retry-After': String(retry),
      });
    }
  }
}

export function rateHeaders(w: RateWindow): Record<string, string> {
  return { 'X-RateLimit-Limit': String(w.limit), 'X-RateLimit-Remaining': String(w.remaining), 'X-RateLimit-Reset': String(w.reset) };
}
