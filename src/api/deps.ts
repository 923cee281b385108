import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import type { Config } from '../config';
import type { Db } from '../db';
import type { ComputePools } from './executor';
import type { TtlCache } from './ttlCache';
import type { KeyPrincipal } from '../db/apiKeys';
import type { RateLimits } from './rateLimit';
import type { DeliveryStarter } from '../operations/webhooks';
import type { EndpointListRow } from '../db/queries/endpoints';

export interface ComponentProbe {
  (): Promise<{ status: 'ok' | 'down' | 'external'; detail?: string }>;
}

export interface ApiDeps {
  config: Config;
  db: Db;
  /** Seals and opens database passwords stored in the catalog. */
  secretKey: Buffer;
  temporal: Client;
  logger: Logger;
  rateLimits: RateLimits;
  /** Starts webhook deliveries right after the transaction that wrote them. */
  deliveries: DeliveryStarter;
  /** Public port of the proxy, written into connection strings. */
  proxyPort: () => number;
  probes: Record<string, ComponentProbe>;
  /**
   * Hot-path lookups (LAMPION_API_CACHE_MS): valid API keys by hash; running endpoints for the
   * SQL executor, which looks again when a cached one fails to connect.
   */
  caches: { apiKeys: TtlCache<KeyPrincipal>; runningEndpoints: TtlCache<EndpointListRow> };
  /** The SQL executor's connections to computes (see api/executor.ts). */
  computePools: ComputePools;
  /**
   * Where this process reaches a compute of its own host over the compute's private socket
   * (set when the stack runs the host's worker too): cheaper per message than loopback TCP.
   */
  localComputeSocket?: { hostId: string; socketDir(endpointId: string): string };
  /**
   * Aborted when the stack stops: an operation's result long poll the API no longer waits for
   * (it answered 202) is cancelled then, instead of retrying on a closed channel from a timer.
   */
  stopping?: AbortSignal;
}
