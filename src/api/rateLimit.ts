import type { Pool } from 'pg';
import { RateLimiterAbstract, RateLimiterMemory, RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible';
import { ApiError } from './errors';

export interface RateWindow {
  limit: number;
  remaining: number;
  /** Unix seconds when the window starts again. */
  reset: number;
}

/** What this process knows of one key's window, and the requests it has not yet counted in the catalog. */
interface Lease {
  windowEnds: number;
  /** The catalog's count at the last answer (every instance's requests in it). */
  counted: number;
  /** Requests this process let through since, not yet added to the catalog's count. */
  pending: number;
  /** Requests being added to the catalog's count right now. */
  inFlight: number;
  flushing: boolean;
  lastFlush: number;
}

/** Below this limit every request is counted in the catalog as it comes: exact, at one round trip each. */
const LEASE_MIN_LIMIT = 100;
/** A lease is flushed after this many requests or this long, whichever is first. */
const LEASE_FLUSH_EVERY = 50;
const LEASE_FLUSH_MS = 250;

/**
 * Requests per minute per API key, by the organization's plan. Counted in the control-plane
 * database (rate-limiter-flexible's Postgres store, table rate_limits), so every API instance
 * shares one count; without a pool (unit use) the count is this process's.
 *
 * Far from the limit (more than a fifth of it left, on limits of 100 and more) a process counts
 * requests locally and adds them to the catalog's count in batches (every 50 requests or
 * 250 ms), so a busy key costs a catalog write per batch, not per request; near the limit every
 * request is counted in the catalog as it comes, so the limit holds across instances.
 */
export class RateLimits {
  private readonly limiters = new Map<number, RateLimiterAbstract>();
  private readonly leases = new Map<string, Lease>();

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

  /**
   * Counts one request on this process's lease when it can (no await: the hot path), or returns
   * undefined when the catalog must count it (`consume`).
   */
  countLocally(keyId: string, plan: string): RateWindow | undefined {
    const limit = this.perMinute(plan);
    if (limit < LEASE_MIN_LIMIT) return undefined;
    const id = `${limit}:${keyId}`;
    const lease = this.leases.get(id);
    const now = Date.now();
    if (!lease || now >= lease.windowEnds || limit - used(lease) <= Math.ceil(limit / 5)) return undefined;
    lease.pending++;
    const remaining = limit - used(lease);
    if (lease.pending >= LEASE_FLUSH_EVERY || now - lease.lastFlush >= LEASE_FLUSH_MS) this.flush(id, lease, limit);
    return { limit, remaining, reset: Math.ceil(lease.windowEnds / 1000) };
  }

  /** Counts one request, or throws 429 with Retry-After; either way the window's headers come back. */
  async consume(keyId: string, plan: string): Promise<RateWindow> {
    return this.countLocally(keyId, plan) ?? this.countInStore(keyId, plan);
  }

  /** Counts one request (and the lease's pending ones) in the store, as `consume` does when the lease cannot. */
  async countInStore(keyId: string, plan: string): Promise<RateWindow> {
    const limit = this.perMinute(plan);
    const id = `${limit}:${keyId}`;
    const now = Date.now();
    let lease = this.leases.get(id);
    if (lease && now >= lease.windowEnds) lease = undefined;
    const points = 1 + (lease?.pending ?? 0);
    try {
      const r = await this.limiter(limit).consume(keyId, points);
      this.remember(id, now, r, limit);
      return this.window(limit, r);
    } catch (err) {
      if (!(err instanceof RateLimiterRes)) throw err;
      this.remember(id, now, err, limit);
      const w = this.window(limit, err);
      const retry = Math.max(1, Math.ceil(err.msBeforeNext / 1000));
      throw new ApiError(429, 'rate_limited', `more than ${limit} requests a minute for this key; retry in ${retry}s`, { retry_after_seconds: retry, limit }, {
        ...rateHeaders(w),
        'Retry-After': String(retry),
      });
    }
  }

  private window(limit: number, r: RateLimiterRes): RateWindow {
    return { limit, remaining: r.remainingPoints, reset: Math.ceil((Date.now() + Math.max(0, r.msBeforeNext)) / 1000) };
  }

  private remember(id: string, now: number, r: RateLimiterRes, limit: number): void {
    if (limit < LEASE_MIN_LIMIT) return;
    if (this.leases.size >= 10_000) this.leases.clear();
    this.leases.set(id, { windowEnds: now + Math.max(0, r.msBeforeNext), counted: r.consumedPoints, pending: 0, inFlight: 0, flushing: false, lastFlush: now });
  }

  /** Adds the lease's pending requests to the catalog's count, in the background. */
  private flush(id: string, lease: Lease, limit: number): void {
    if (lease.flushing || !lease.pending) return;
    lease.flushing = true;
    const n = lease.pending;
    lease.pending = 0;
    lease.inFlight = n;
    const keyId = id.slice(id.indexOf(':') + 1);
    const settle = (r: RateLimiterRes) => {
      lease.counted = Math.max(lease.counted + n, r.consumedPoints);
      lease.windowEnds = Date.now() + Math.max(0, r.msBeforeNext);
    };
    this.limiter(limit)
      .consume(keyId, n)
      .then(settle, (err) => (err instanceof RateLimiterRes ? settle(err) : (lease.pending += n)))
      .finally(() => {
        lease.inFlight = 0;
        lease.flushing = false;
        lease.lastFlush = Date.now();
      });
  }
}

function used(l: Lease): number {
  return l.counted + l.inFlight + l.pending;
}

export function rateHeaders(w: RateWindow): Record<string, string> {
  return { 'X-RateLimit-Limit': String(w.limit), 'X-RateLimit-Remaining': String(w.remaining), 'X-RateLimit-Reset': String(w.reset) };
}
