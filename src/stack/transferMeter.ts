import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { Db } from '../db';
import { usagePeriod } from '../domain/usage';

/**
 * The proxy's byte counts, summed in memory per endpoint and added to usage_transfer (per
 * endpoint and month) every few seconds and at stop: one upsert per endpoint per flush, never
 * one per packet.
 */
export class TransferMeter {
  private pending = new Map<string, number>();
  private timer?: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
    private readonly everyMs = 5_000,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.everyMs);
    this.timer.unref();
  }

  add(endpointId: string, bytes: number): void {
    this.pending.set(endpointId, (this.pending.get(endpointId) ?? 0) + bytes);
  }

  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      const batch = this.pending;
      this.pending = new Map();
      const period = usagePeriod(new Date());
      for (const [endpointId, bytes] of batch) {
        try {
          await sql`INSERT INTO usage_transfer (endpoint_id, project_id, period, bytes)
                    SELECT id, project_id, ${period}, ${bytes} FROM endpoints WHERE id = ${endpointId}
                    ON CONFLICT (endpoint_id, period) DO UPDATE SET bytes = usage_transfer.bytes + excluded.bytes`.execute(this.db);
        } catch (err) {
          // Kept for the next flush: a catalog hiccup must not lose what was counted.
          this.add(endpointId, bytes);
          this.logger.warn({ err: (err as Error).message, endpointId }, 'could not record transfer; kept for the next flush');
        }
      }
    });
    return this.flushing;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
