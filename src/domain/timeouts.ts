/** How long host activities may take; passed to workflows in their memo under this key. */
export const HOST_TIMEOUTS_MEMO = 'lampionHostTimeouts';

export interface HostTimeouts {
  /** A host activity that does not heartbeat for this long is presumed dead and retried. */
  heartbeatSeconds: number;
  /** Start-to-close of short host work (start, stop, bootstrap, seeds). */
  shortSeconds: number;
  /** Start-to-close of long host work (a fork by copy of a large database): heartbeats bound it. */
  longSeconds: number;
}

export const DEFAULT_HOST_TIMEOUTS: HostTimeouts = { heartbeatSeconds: 15, shortSeconds: 600, longSeconds: 7 * 86_400 };
