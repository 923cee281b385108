import { RateLimits } from '../src/api/rateLimit';
import { ApiError } from '../src/api/errors';

describe('rate limits', () => {
  it('lets exactly the limit through in a window, counting locally far from it and exactly near it', async () => {
    const limits = new RateLimits(() => 100);
    const answers: number[] = [];
    let refused: ApiError | undefined;
    for (let i = 0; i < 101; i++) {
      try {
        answers.push((await limits.consume('key-a', 'pro')).remaining);
      } catch (err) {
        refused = err as ApiError;
      }
    }
    expect(answers).toHaveLength(100);
    expect(answers[0]).toBe(99);
    expect(answers.at(-1)).toBe(0);
    // Remaining never goes up within the window.
    expect(answers.every((r, i) => i === 0 || r <= answers[i - 1])).toBe(true);
    expect(refused?.status).toBe(429);
    expect(Number(refused?.headers?.['Retry-After'])).toBeGreaterThan(0);
    expect(refused?.headers?.['X-RateLimit-Remaining']).toBe('0');
    // Another key has its own window.
    expect((await limits.consume('key-b', 'pro')).remaining).toBe(99);
  });

  it('counts every request in the store below 100 a minute', async () => {
    const limits = new RateLimits(() => 3);
    expect(limits.countLocally('k', 'free')).toBeUndefined();
    expect((await limits.consume('k', 'free')).remaining).toBe(2);
    expect(limits.countLocally('k', 'free')).toBeUndefined();
    await limits.consume('k', 'free');
    await limits.consume('k', 'free');
    await expect(limits.consume('k', 'free')).rejects.toMatchObject({ status: 429 });
  });
});
