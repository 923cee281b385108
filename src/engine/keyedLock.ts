/**
 * One holder per key at a time, in arrival order. The host engine serializes start, stop and
 * resize of one data dir with it: the proxy's wake-on-connect and the host worker's activities
 * run in one process and may reach the same compute together.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      // The last holder leaves no entry behind.
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Whether anyone holds or waits for the key. */
  busy(key: string): boolean {
    return this.tails.has(key);
  }
}
