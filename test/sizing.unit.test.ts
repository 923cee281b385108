import {
  COMPUTE_SIZES,
  CU_TIERS,
  autoscaleDecision,
  isComputeSize,
  pgSettingsForCu,
  resourceLimitsForCu,
  validateCuRange,
} from '../src/domain/sizing';
import { renderRuntimeConf } from '../src/engine/cluster';

const mb = (v: string | number) => {
  const m = /^(\d+)MB$/.exec(String(v));
  if (!m) throw new Error(`not an MB size: ${v}`);
  return Number(m[1]);
};

describe('compute sizes', () => {
  it('lists the eight tiers in the reference API shape', () => {
    expect(COMPUTE_SIZES.map((s) => s.cu)).toEqual([0.25, 0.5, 1, 2, 3, 4, 6, 8]);
    expect(COMPUTE_SIZES[0]).toEqual({ cu: 0.25, label: '0.25 CU', vcpu: 0.25, memory_gb: 0.5 });
    expect(COMPUTE_SIZES.find((s) => s.cu === 1)).toEqual({ cu: 1, label: '1 CU', vcpu: 1, memory_gb: 2 });
    expect(COMPUTE_SIZES.find((s) => s.cu === 4)).toEqual({ cu: 4, label: '4 CU', vcpu: 4, memory_gb: 8 });
    expect(JSON.parse(JSON.stringify(COMPUTE_SIZES))[7]).toEqual({ cu: 8, label: '8 CU', vcpu: 8, memory_gb: 16 });
  });
  it('recognises only tiers', () => {
    for (const cu of CU_TIERS) expect(isComputeSize(cu)).toBe(true);
    for (const v of [0, 0.3, 5, 7, 16, -1, NaN, '1', undefined]) expect(isComputeSize(v)).toBe(false);
  });
  it('turns a tier into cgroup limits', () => {
    expect(resourceLimitsForCu(0.25)).toEqual({ vcpu: 0.25, memoryBytes: 512 * 1024 * 1024 });
    expect(resourceLimitsForCu(2)).toEqual({ vcpu: 2, memoryBytes: 4 * 1024 ** 3 });
    expect(() => resourceLimitsForCu(5)).toThrow(/not a compute size/);
  });
});

describe('pgSettingsForCu', () => {
  it('sizes memory settings from the tier', () => {
    expect(pgSettingsForCu(0.25)).toMatchObject({
      shared_buffers: '128MB',
      effective_cache_size: '384MB',
      max_connections: 100,
      max_parallel_workers_per_gather: 0,
    });
    expect(pgSettingsForCu(1)).toMatchObject({ shared_buffers: '512MB', effective_cache_size: '1536MB' });
    expect(pgSettingsForCu(8)).toMatchObject({ shared_buffers: '4096MB', effective_cache_size: '12288MB' });
  });
  it.each(CU_TIERS.map((cu) => [cu]))('keeps %p CU within its memory and Postgres constraints', (cu) => {
    const s = pgSettingsForCu(cu);
    const memoryMb = cu * 2048;
    expect(mb(s.shared_buffers) / memoryMb).toBeCloseTo(0.25, 2);
    expect(mb(s.effective_cache_size) / memoryMb).toBeCloseTo(0.75, 2);
    const maxConnections = s.max_connections as number;
    expect(maxConnections).toBeGreaterThanOrEqual(100);
    expect(mb(s.work_mem)).toBeGreaterThanOrEqual(4);
    // One work_mem per allowed connection fits beside shared_buffers (4MB floor aside).
    if (mb(s.work_mem) > 4) expect(mb(s.work_mem) * maxConnections).toBeLessThanOrEqual(memoryMb - mb(s.shared_buffers));
    // Three autovacuum workers may each take maintenance_work_mem.
    expect(3 * mb(s.maintenance_work_mem)).toBeLessThanOrEqual(memoryMb * 0.2);
    const workers = s.max_worker_processes as number;
    expect(workers).toBeGreaterThanOrEqual(8);
    expect(s.max_parallel_workers as number).toBeLessThanOrEqual(workers - 4);
    expect(s.max_parallel_workers_per_gather as number).toBeLessThanOrEqual(s.max_parallel_workers as number);
    expect(s.max_parallel_maintenance_workers as number).toBeLessThanOrEqual(s.max_parallel_workers as number);
  });
  it('grows monotonically with the tier', () => {
    const all = CU_TIERS.map((cu) => pgSettingsForCu(cu));
    for (let i = 1; i < all.length; i++) {
      expect(mb(all[i].shared_buffers)).toBeGreaterThan(mb(all[i - 1].shared_buffers));
      expect(all[i].max_connections as number).toBeGreaterThanOrEqual(all[i - 1].max_connections as number);
      expect(all[i].max_parallel_workers as number).toBeGreaterThanOrEqual(all[i - 1].max_parallel_workers as number);
    }
  });
  it('renders into postgresql.conf syntax', () => {
    const conf = renderRuntimeConf(
      { major: 15, binDir: '/usr/lib/postgresql/15/bin' },
      { port: 5500, socketDir: '/tmp/s', walArchiveDir: '/tmp/w', extra: pgSettingsForCu(2) },
    );
    expect(conf).toContain("shared_buffers = '1024MB'");
    expect(conf).toContain('max_connections = 300');
    for (const line of conf.split('\n').filter((l) => l && !l.startsWith('#'))) {
      expect(line).toMatch(/^[a-z_.]+ = ('([^'\\]|'')*'|\d+)$/);
    }
  });
  it('rejects non-tiers', () => {
    expect(() => pgSettingsForCu(5)).toThrow(RangeError);
  });
});

describe('validateCuRange', () => {
  it('accepts ordered tiers', () => {
    expect(validateCuRange(0.25, 8)).toBeUndefined();
    expect(validateCuRange(2, 2)).toBeUndefined();
  });
  it('names what is wrong', () => {
    expect(validateCuRange(4, 1)).toMatch(/min_cu \(4\) must not exceed max_cu \(1\)/);
    expect(validateCuRange(0.3, 1)).toMatch(/min_cu must be one of/);
    expect(validateCuRange(1, 5)).toMatch(/max_cu must be one of/);
  });
});

describe('autoscaleDecision', () => {
  const range = { minCu: 0.25, maxCu: 8 };
  it('steps one tier up when busy', () => {
    expect(autoscaleDecision({ ...range, currentCu: 1, cpuUtilization: 0.9 })).toBe(2);
    expect(autoscaleDecision({ ...range, currentCu: 4, cpuUtilization: 3 })).toBe(6);
    expect(autoscaleDecision({ ...range, currentCu: 0.5, cpuUtilization: 0.1, memoryUtilization: 0.8 })).toBe(1);
  });
  it('steps one tier down only when CPU and memory are both idle', () => {
    expect(autoscaleDecision({ ...range, currentCu: 2, cpuUtilization: 0.1 })).toBe(1);
    expect(autoscaleDecision({ ...range, currentCu: 2, cpuUtilization: 0.1, memoryUtilization: 0.2 })).toBe(1);
    expect(autoscaleDecision({ ...range, currentCu: 2, cpuUtilization: 0.1, memoryUtilization: 0.5 })).toBe(2);
  });
  it('holds in the band between', () => {
    expect(autoscaleDecision({ ...range, currentCu: 3, cpuUtilization: 0.5 })).toBe(3);
    expect(autoscaleDecision({ ...range, currentCu: 3, cpuUtilization: 0.75 })).toBe(3);
    expect(autoscaleDecision({ ...range, currentCu: 3, cpuUtilization: 0.25 })).toBe(3);
  });
  it('never scales past the range or the tier list', () => {
    expect(autoscaleDecision({ minCu: 0.5, maxCu: 2, currentCu: 2, cpuUtilization: 1 })).toBe(2);
    expect(autoscaleDecision({ minCu: 0.5, maxCu: 2, currentCu: 0.5, cpuUtilization: 0 })).toBe(0.5);
    expect(autoscaleDecision({ ...range, currentCu: 8, cpuUtilization: 5 })).toBe(8);
    expect(autoscaleDecision({ ...range, currentCu: 0.25, cpuUtilization: 0 })).toBe(0.25);
  });
  it('moves back into a range that changed under the compute', () => {
    expect(autoscaleDecision({ minCu: 2, maxCu: 4, currentCu: 0.5, cpuUtilization: 0.5 })).toBe(2);
    expect(autoscaleDecision({ minCu: 0.25, maxCu: 1, currentCu: 6, cpuUtilization: 0.9 })).toBe(1);
  });
  it('snaps an off-tier current size to the nearest tier', () => {
    expect(autoscaleDecision({ ...range, currentCu: 5.1, cpuUtilization: 0.5 })).toBe(6);
    expect(autoscaleDecision({ ...range, currentCu: 1.2, cpuUtilization: 0.9 })).toBe(2);
  });
  it('does not step down into a tier it would immediately leave', () => {
    for (let i = 1; i < CU_TIERS.length; i++) {
      const cu = CU_TIERS[i];
      const busy = 0.249;
      const next = autoscaleDecision({ ...range, currentCu: cu, cpuUtilization: busy });
      expect(next).toBe(CU_TIERS[i - 1]);
      const after = (busy * cu) / next;
      expect(autoscaleDecision({ ...range, currentCu: next, cpuUtilization: after })).toBe(next);
    }
  });
  it('ignores unmeasured utilisation', () => {
    expect(autoscaleDecision({ ...range, currentCu: 2, cpuUtilization: NaN })).toBe(2);
    expect(autoscaleDecision({ ...range, currentCu: 2, cpuUtilization: 0.1, memoryUtilization: NaN })).toBe(2);
  });
  it('rejects an invalid range', () => {
    expect(() => autoscaleDecision({ minCu: 4, maxCu: 1, currentCu: 2, cpuUtilization: 0.5 })).toThrow(RangeError);
  });
});
