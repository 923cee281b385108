/**
 * Usage for billing, from what the platform recorded: compute hours weighted by size from the
 * compute events (start, resume and restart open a running interval; suspend and stop close it;
 * a resize closes one size and opens the next), clipped to the period.
 */

/** The billing period of a moment: its UTC month, YYYY-MM. */
export function usagePeriod(at: Date): string {
  return at.toISOString().slice(0, 7);
}

export function periodBounds(period: string): { start: Date; end: Date } {
  const [y, m] = period.split('-').map(Number);
  return { start: new Date(Date.UTC(y, m - 1, 1)), end: new Date(Date.UTC(y, m, 1)) };
}

export interface UsageEvent {
  endpointId: string;
  event: 'start' | 'suspend' | 'resume' | 'resize' | 'stop' | 'restart';
  at: Date;
  /** Size at the event (after it, for a resize); null for events recorded before sizes were. */
  computeCu: number | null;
}

/** CU-hours and wall-clock hours of running computes within [start, end), given events in any order. */
export function computeHours(events: UsageEvent[], bounds: { start: Date; end: Date }, now: Date, currentCu: (endpointId: string) => number): { cuHours: number; hours: number } {
  const byEndpoint = new Map<string, UsageEvent[]>();
  for (const e of events) byEndpoint.set(e.endpointId, [...(byEndpoint.get(e.endpointId) ?? []), e]);
  const until = Math.min(now.getTime(), bounds.end.getTime());
  let cuSeconds = 0;
  let seconds = 0;
  const add = (from: number, to: number, cu: number) => {
    const a = Math.max(from, bounds.start.getTime());
    const b = Math.min(to, until);
    if (b <= a) return;
    seconds += (b - a) / 1000;
    cuSeconds += ((b - a) / 1000) * cu;
  };
  for (const [endpointId, list] of byEndpoint) {
    list.sort((x, y) => x.at.getTime() - y.at.getTime());
    let open: { since: number; cu: number } | undefined;
    for (const e of list) {
      const t = e.at.getTime();
      const cu = e.computeCu ?? currentCu(endpointId);
      if (e.event === 'start' || e.event === 'resume' || e.event === 'restart') {
        if (open) add(open.since, t, open.cu);
        open = { since: t, cu };
      } else if (e.event === 'resize') {
        if (open) {
          add(open.since, t, open.cu);
          open = { since: t, cu };
        }
      } else if (open) {
        add(open.since, t, open.cu);
        open = undefined;
      }
    }
    if (open) add(open.since, until, open.cu);
  }
  return { cuHours: cuSeconds / 3600, hours: seconds / 3600 };
}
