import { KeyedLock } from '../src/engine/keyedLock';

const tick = () => new Promise((r) => setImmediate(r));

describe('KeyedLock', () => {
  it('runs holders of one key one at a time, in arrival order', async () => {
    const lock = new KeyedLock();
    const log: string[] = [];
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const a = lock.run('k', async () => {
      log.push('a start');
      await gate;
      log.push('a end');
    });
    const b = lock.run('k', async () => void log.push('b'));
    const c = lock.run('k', async () => void log.push('c'));
    await tick();
    expect(log).toEqual(['a start']);
    open();
    await Promise.all([a, b, c]);
    expect(log).toEqual(['a start', 'a end', 'b', 'c']);
    expect(lock.busy('k')).toBe(false);
  });

  it('lets different keys run together', async () => {
    const lock = new KeyedLock();
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const a = lock.run('a', () => gate);
    let bRan = false;
    await lock.run('b', async () => void (bRan = true));
    expect(bRan).toBe(true);
    expect(lock.busy('a')).toBe(true);
    open();
    await a;
  });

  it('passes the lock on when a holder throws, and gives the caller the error', async () => {
    const lock = new KeyedLock();
    const failed = lock.run('k', async () => {
      throw new Error('boom');
    });
    const next = lock.run('k', async () => 42);
    await expect(failed).rejects.toThrow('boom');
    await expect(next).resolves.toBe(42);
    expect(lock.busy('k')).toBe(false);
  });
});
