/** Compute sizes in CU (compute units): 1 CU = 1 vCPU + 2 GB of memory. Pure: no I/O. */

export const CU_TIERS = [0.25, 0.5, 1, 2, 3, 4, 6, 8] as const;

export interface ComputeSize {
  cu: number;
  label: string;
  vcpu: number;
  memory_gb: number;
}

export const VCPU_PER_CU = 1;
export const MEMORY_GB_PER_CU = 2;
// GB here means GiB, the unit Postgres ("MB" = 1024 kB) and cgroups (bytes) both reason in.
const BYTES_PER_GB = 1024 ** 3;

export const COMPUTE_SIZES: readonly ComputeSize[] = Object.freeze(
  CU_TIERS.map((cu) => Object.freeze({ cu, label: `${cu} CU`, vcpu: cu * VCPU_PER_CU, memory_gb: cu * MEMORY_GB_PER_CU })),
);

export function isComputeSize(cu: unknown): cu is number {
  return typeof cu === 'number' && (CU_TIERS as readonly number[]).includes(cu);
}

function assertComputeSize(cu: number): void {
  if (!isComputeSize(cu)) throw new RangeError(`${cu} is not a compute size; expected one of ${CU_TIERS.join(', ')}`);
}

/** What the host enforces for a tier (input of CgroupLimiter). */
export function resourceLimitsForCu(cu: number): { vcpu: number; memoryBytes: number } {
  assertComputeSize(cu);
  return { vcpu: cu * VCPU_PER_CU, memoryBytes: cu * MEMORY_GB_PER_CU * BYTES_PER_GB };
}

/**
 * Postgres settings for a tier, ready for postgresql.conf (sizes as '<n>MB', counts as numbers).
 *
 * Why these numbers: the cgroup memory limit is a hard wall, and an OOM kill of any backend
 * makes the postmaster restart every session, so the budget errs towards safety.
 * shared_buffers takes the customary 25% and effective_cache_size states that the remaining
 * ~75% is page cache the planner may count on. max_connections grows with the tier but never
 * below Postgres' default of 100 (clients expect it). work_mem is the memory left after
 * shared_buffers split across all allowed connections, so every connection can hold one sort
 * or hash at once without breaching the limit (floor: Postgres' 4MB default).
 * maintenance_work_mem is 1/16 of memory (clamped 32MB..2GB) because each of the 3 autovacuum
 * workers may take that much, and the 64MB default would be ~40% of a 0.25 CU compute.
 * Parallel query only pays off with spare cores: under 2 vCPU parallel workers merely compete
 * for the same CPU quota, so the parallel pool is one worker per whole vCPU, per-gather
 * parallelism half the vCPUs (0 below 2), and max_worker_processes keeps 4 slots above the
 * pool for logical replication and extensions' background workers (never below the default 8).
 * shared_buffers, max_connections and max_worker_processes take effect only at a restart.
 */
export function pgSettingsForCu(cu: number): Record<string, string | number> {
  assertComputeSize(cu);
  const memoryMb = cu * MEMORY_GB_PER_CU * 1024;
  const vcpu = cu * VCPU_PER_CU;
  const sharedBuffersMb = Math.floor(memoryMb * 0.25);
  const maxConnections = Math.max(100, Math.round(150 * cu));
  const workMemMb = Math.max(4, Math.floor((memoryMb - sharedBuffersMb) / maxConnections));
  const maintenanceWorkMemMb = Math.min(2048, Math.max(32, Math.floor(memoryMb / 16)));
  const maxParallelWorkers = Math.max(1, Math.floor(vcpu));
  const perGather = Math.floor(vcpu / 2);
  return {
    shared_buffers: `${sharedBuffersMb}MB`,
    effective_cache_size: `${Math.floor(memoryMb * 0.75)}MB`,
    work_mem: `${workMemMb}MB`,
    maintenance_work_mem: `${maintenanceWorkMemMb}MB`,
    max_connections: maxConnections,
    max_worker_processes: Math.max(8, maxParallelWorkers + 4),
    max_parallel_workers: maxParallelWorkers,
    max_parallel_workers_per_gather: perGather,
    max_parallel_maintenance_workers: Math.min(4, perGather),
  };
}

/** An error message for an invalid autoscaling range, or undefined when it is valid. */
export function validateCuRange(min: number, max: number): string | undefined {
  if (!isComputeSize(min)) return `min_cu must be one of ${CU_TIERS.join(', ')}; got ${min}`;
  if (!isComputeSize(max)) return `max_cu must be one of ${CU_TIERS.join(', ')}; got ${max}`;
  if (min > max) return `min_cu (${min}) must not exceed max_cu (${max})`;
  return undefined;
}

export interface AutoscaleInput {
  currentCu: number;
  minCu: number;
  maxCu: number;
  /** Fraction of the current CU's vCPU used over the window; above 1 means throttled demand. */
  cpuUtilization: number;
  /** Fraction of the current CU's memory in use, when measured. */
  memoryUtilization?: number;
}

export const SCALE_UP_ABOVE = 0.75;
export const SCALE_DOWN_BELOW = 0.25;

function nearestTierIndex(cu: number): number {
  let best = 0;
  for (let i = 1; i < CU_TIERS.length; i++) {
    if (Math.abs(CU_TIERS[i] - cu) < Math.abs(CU_TIERS[best] - cu)) best = i;
  }
  return best;
}

/**
 * The CU the compute should run at next: one tier up when CPU or memory is over 75% busy, one
 * tier down only when both are under 25%. Adjacent tiers differ by at most 2x, so load under
 * 25% lands under 50% after stepping down and cannot bounce straight back up.
 * Unknown measurements (NaN) never move the compute except back into [minCu, maxCu].
 */
export function autoscaleDecision(input: AutoscaleInput): number {
  const error = validateCuRange(input.minCu, input.maxCu);
  if (error) throw new RangeError(error);
  let index = nearestTierIndex(input.currentCu);
  const cpu = input.cpuUtilization;
  const mem = input.memoryUtilization;
  const known = (v: number | undefined): v is number => typeof v === 'number' && Number.isFinite(v);
  if ((known(cpu) && cpu > SCALE_UP_ABOVE) || (known(mem) && mem > SCALE_UP_ABOVE)) {
    index = Math.min(index + 1, CU_TIERS.length - 1);
  } else if (known(cpu) && cpu < SCALE_DOWN_BELOW && (mem === undefined || (known(mem) && mem < SCALE_DOWN_BELOW))) {
    index = Math.max(index - 1, 0);
  }
  return Math.min(input.maxCu, Math.max(input.minCu, CU_TIERS[index]));
}
