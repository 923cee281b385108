import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { exists } from './fs';
import { ENDPOINT_ID_RE } from '../domain/ids';

/**
 * Host resource limits for computes through Linux cgroups: a group `lampion/<endpointId>` per
 * compute under each controller, holding its CPU quota and memory limit.
 */

export type CgroupVersion = 'v1' | 'v2' | 'none';

/** Where each controller's hierarchy is mounted; on v2 all three are the unified mount. */
export interface CgroupMounts {
  cpu: string;
  /** Absent when v1 has no cpuacct hierarchy: usage is then unknown, limits still work. */
  cpuacct?: string;
  memory: string;
}

export interface CgroupDetection {
  version: CgroupVersion;
  writable: boolean;
  reason?: string;
  mounts?: CgroupMounts;
}

export interface DetectOptions {
  /** Where cgroupfs is expected (v2 unified mount). */
  root?: string;
  /** Mount table to search for v1 hierarchies. */
  mountsFile?: string;
  /** Name of the group that holds every compute's group. */
  rootGroup?: string;
}

export const CGROUP_ROOT_GROUP = 'lampion';
export const CPU_PERIOD_US = 100_000;
// The kernel refuses CFS quotas under 1 ms.
const MIN_CPU_QUOTA_US = 1_000;

function errCode(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? String(err);
}

async function readText(file: string): Promise<string> {
  return fsp.readFile(file, 'utf8');
}

async function writeCgroupFile(file: string, value: string): Promise<void> {
  try {
    await fsp.writeFile(file, value);
  } catch (err) {
    const hint =
      errCode(err) === 'EBUSY' && file.endsWith('limit_in_bytes')
        ? ' (v1 refuses a memory limit below current usage it cannot reclaim)'
        : '';
    throw new Error(`cannot write "${value}" to ${file}: ${errCode(err)}${hint}`);
  }
}

/** /proc/self/mounts escapes spaces and friends as octal (\040). */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

async function v1Mounts(mountsFile: string): Promise<Partial<CgroupMounts>> {
  let text: string;
  try {
    text = await readText(mountsFile);
  } catch {
    return {};
  }
  const found: Partial<CgroupMounts> = {};
  for (const line of text.split('\n')) {
    const [, mountPoint, fstype, options] = line.split(' ');
    if (fstype !== 'cgroup' || !options) continue;
    const opts = options.split(',');
    for (const controller of ['cpu', 'cpuacct', 'memory'] as const) {
      if (opts.includes(controller) && !found[controller]) found[controller] = unescapeMountField(mountPoint);
    }
  }
  return found;
}

async function detectV2(root: string, rootGroup: string): Promise<CgroupDetection> {
  const no = (reason: string): CgroupDetection => ({ version: 'v2', writable: false, reason });
  const available = (await readText(path.join(root, 'cgroup.controllers'))).split(/\s+/);
  const missing = ['cpu', 'memory'].filter((c) => !available.includes(c));
  if (missing.length) return no(`cgroup v2 at ${root} does not offer the ${missing.join(' and ')} controller(s)`);
  const group = path.join(root, rootGroup);
  try {
    await fsp.mkdir(group, { recursive: true });
  } catch (err) {
    return no(`cannot create ${group}: ${errCode(err)}`);
  }
  // v2 hands a controller to a child only when every ancestor lists it in subtree_control.
  for (const dir of [root, group]) {
    const enabled = (await readText(path.join(dir, 'cgroup.subtree_control')).catch(() => '')).split(/\s+/);
    for (const c of ['cpu', 'memory'].filter((x) => !enabled.includes(x))) {
      try {
        await fsp.writeFile(path.join(dir, 'cgroup.subtree_control'), `+${c}`);
      } catch (err) {
        const why =
          errCode(err) === 'EBUSY'
            ? ' (the group holds processes, and v2 enables controllers only for groups without them, the root excepted)'
            : '';
        return no(`cannot enable the ${c} controller in ${dir}/cgroup.subtree_control: ${errCode(err)}${why}`);
      }
    }
  }
  for (const file of ['cpu.max', 'memory.max']) {
    if (!(await exists(path.join(group, file)))) return no(`${group}/${file} is missing after enabling controllers`);
  }
  return { version: 'v2', writable: true, mounts: { cpu: root, cpuacct: root, memory: root } };
}

async function detectV1(found: Partial<CgroupMounts>, rootGroup: string): Promise<CgroupDetection> {
  const mounts: CgroupMounts = { cpu: found.cpu!, memory: found.memory!, ...(found.cpuacct ? { cpuacct: found.cpuacct } : {}) };
  const no = (reason: string): CgroupDetection => ({ version: 'v1', writable: false, reason, mounts });
  for (const mount of new Set(Object.values(mounts) as string[])) {
    const group = path.join(mount, rootGroup);
    try {
      await fsp.mkdir(group, { recursive: true });
    } catch (err) {
      return no(`cannot create ${group}: ${errCode(err)}`);
    }
  }
  if (!(await exists(path.join(mounts.cpu, rootGroup, 'cpu.cfs_quota_us')))) {
    return no('the kernel has no CFS bandwidth control (cpu.cfs_quota_us missing)');
  }
  if (!(await exists(path.join(mounts.memory, rootGroup, 'memory.limit_in_bytes')))) {
    return no('memory.limit_in_bytes missing in the memory hierarchy');
  }
  return { version: 'v1', writable: true, mounts };
}

/**
 * Which cgroup version this host offers and whether we may use it. Creates the (persistent)
 * root group `lampion` as its write test: on v2 that group must also carry the controllers
 * enabled for its children, so it is set up here once rather than per compute.
 */
export async function detectCgroups(opts: DetectOptions = {}): Promise<CgroupDetection> {
  const root = opts.root ?? '/sys/fs/cgroup';
  const rootGroup = opts.rootGroup ?? CGROUP_ROOT_GROUP;
  if (await exists(path.join(root, 'cgroup.controllers'))) return detectV2(root, rootGroup);
  const found = await v1Mounts(opts.mountsFile ?? '/proc/self/mounts');
  if (found.cpu && found.memory) return detectV1(found, rootGroup);
  const partial = found.cpu || found.memory ? ` (only ${found.cpu ? 'cpu' : 'memory'} is mounted)` : '';
  return {
    version: 'none',
    writable: false,
    reason: `no cgroup v2 at ${root} and no cgroup v1 cpu and memory hierarchies mounted${partial}`,
  };
}

export interface ResourceLimits {
  vcpu: number;
  memoryBytes: number;
}

function validateLimits(l: ResourceLimits): { quotaUs: number; memoryBytes: number } {
  if (!Number.isFinite(l.vcpu) || l.vcpu <= 0) throw new RangeError(`vcpu must be a positive number; got ${l.vcpu}`);
  if (!Number.isFinite(l.memoryBytes) || l.memoryBytes <= 0) {
    throw new RangeError(`memoryBytes must be a positive number; got ${l.memoryBytes}`);
  }
  return {
    quotaUs: Math.max(MIN_CPU_QUOTA_US, Math.round(l.vcpu * CPU_PERIOD_US)),
    memoryBytes: Math.floor(l.memoryBytes),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Puts computes into per-endpoint cgroups. Built from a detection; when cgroups are absent or
 * not writable every method is a no-op and `enforced` is false, so callers can report that
 * limits are advisory instead of failing the compute.
 */
export class CgroupLimiter {
  readonly version: CgroupVersion;

  constructor(
    readonly detection: CgroupDetection,
    readonly rootGroup = CGROUP_ROOT_GROUP,
  ) {
    this.version = detection.version;
  }

  static async create(opts: DetectOptions = {}): Promise<CgroupLimiter> {
    return new CgroupLimiter(await detectCgroups(opts), opts.rootGroup ?? CGROUP_ROOT_GROUP);
  }

  get enforced(): boolean {
    return this.detection.version !== 'none' && this.detection.writable && Boolean(this.detection.mounts);
  }

  /** Why limits are not enforced, when they are not. */
  get reason(): string | undefined {
    return this.enforced ? undefined : (this.detection.reason ?? 'cgroups are not usable');
  }

  /** The endpoint's group directory in each hierarchy (undefined when not enforced). */
  groupDirs(endpointId: string): { cpu: string; cpuacct?: string; memory: string } | undefined {
    if (!ENDPOINT_ID_RE.test(endpointId)) throw new Error(`invalid endpoint id for a cgroup name: ${endpointId}`);
    const m = this.detection.mounts;
    if (!this.enforced || !m) return undefined;
    const dir = (mount: string) => path.join(mount, this.rootGroup, endpointId);
    return { cpu: dir(m.cpu), memory: dir(m.memory), ...(m.cpuacct ? { cpuacct: dir(m.cpuacct) } : {}) };
  }

  /** Distinct directories: v2 and co-mounted v1 controllers share one. */
  private distinctDirs(endpointId: string): string[] {
    const dirs = this.groupDirs(endpointId);
    return dirs ? [...new Set([dirs.cpu, dirs.cpuacct, dirs.memory].filter((d): d is string => Boolean(d)))] : [];
  }

  async apply(endpointId: string, pids: number[], limits: ResourceLimits): Promise<void> {
    const checked = validateLimits(limits);
    if (!this.enforced) return;
    for (const dir of this.distinctDirs(endpointId)) await fsp.mkdir(dir, { recursive: true });
    await this.writeLimits(endpointId, checked);
    await this.move(endpointId, pids);
  }

  /** Moves processes into the endpoint's groups, which apply() has made. */
  async move(endpointId: string, pids: number[]): Promise<void> {
    if (!this.enforced) return;
    for (const dir of this.distinctDirs(endpointId)) {
      for (const pid of pids) await movePid(dir, pid);
    }
  }

  async update(endpointId: string, limits: ResourceLimits): Promise<void> {
    const checked = validateLimits(limits);
    if (!this.enforced) return;
    for (const dir of this.distinctDirs(endpointId)) {
      if (!(await exists(dir))) throw new Error(`no cgroup for endpoint ${endpointId} (${dir}); apply it first`);
    }
    await this.writeLimits(endpointId, checked);
  }

  private async writeLimits(endpointId: string, l: { quotaUs: number; memoryBytes: number }): Promise<void> {
    const dirs = this.groupDirs(endpointId)!;
    if (this.version === 'v2') {
      await writeCgroupFile(path.join(dirs.cpu, 'cpu.max'), `${l.quotaUs} ${CPU_PERIOD_US}`);
      await writeCgroupFile(path.join(dirs.memory, 'memory.max'), String(l.memoryBytes));
    } else {
      // Period first: the quota is interpreted against it.
      await writeCgroupFile(path.join(dirs.cpu, 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
      await writeCgroupFile(path.join(dirs.cpu, 'cpu.cfs_quota_us'), String(l.quotaUs));
      await writeCgroupFile(path.join(dirs.memory, 'memory.limit_in_bytes'), String(l.memoryBytes));
    }
  }

  /** Processes in the endpoint's group (its cpu hierarchy). */
  async pids(endpointId: string): Promise<number[]> {
    const dirs = this.groupDirs(endpointId);
    if (!dirs) return [];
    return readProcs(dirs.cpu);
  }

  /**
   * CPU time used by the group since it was created; undefined when not measurable (limits
   * not enforced, no cpuacct hierarchy on v1, or no such group).
   */
  async cpuUsageSeconds(endpointId: string): Promise<number | undefined> {
    const dirs = this.groupDirs(endpointId);
    if (!dirs) return undefined;
    try {
      if (this.version === 'v2') {
        const stat = await readText(path.join(dirs.cpu, 'cpu.stat'));
        const m = /^usage_usec (\d+)$/m.exec(stat);
        return m ? Number(m[1]) / 1e6 : undefined;
      }
      // v1 cpu.stat only counts throttling; usage lives in cpuacct, which may be a separate hierarchy.
      if (!dirs.cpuacct) return undefined;
      return Number((await readText(path.join(dirs.cpuacct, 'cpuacct.usage'))).trim()) / 1e9;
    } catch (err) {
      if (errCode(err) === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Memory the group uses now (page cache included, as the limit counts it); undefined when not measurable. */
  async memoryUsageBytes(endpointId: string): Promise<number | undefined> {
    const dirs = this.groupDirs(endpointId);
    if (!dirs) return undefined;
    try {
      const file = this.version === 'v2' ? 'memory.current' : 'memory.usage_in_bytes';
      return Number((await readText(path.join(dirs.memory, file))).trim());
    } catch (err) {
      if (errCode(err) === 'ENOENT') return undefined;
      throw err;
    }
  }

  /**
   * Removes the endpoint's groups. Remaining processes go back to the hierarchy root rather than
   * to `lampion`: on v2 a group with controllers enabled for children may not hold processes.
   * Retries because a process may fork into the group while it is being emptied.
   */
  async remove(endpointId: string): Promise<void> {
    if (!this.enforced) return;
    const m = this.detection.mounts!;
    const dirs = this.groupDirs(endpointId)!;
    const pairs: Array<[string, string]> = [
      [dirs.cpu, m.cpu],
      [dirs.memory, m.memory],
      ...(dirs.cpuacct && m.cpuacct ? [[dirs.cpuacct, m.cpuacct] as [string, string]] : []),
    ];
    const seen = new Set<string>();
    for (const [dir, mount] of pairs) {
      if (seen.has(dir)) continue;
      seen.add(dir);
      for (let attempt = 0; ; attempt++) {
        if (!(await exists(dir))) break;
        for (const pid of await readProcs(dir).catch(() => [])) await movePid(mount, pid);
        try {
          await fsp.rmdir(dir);
          break;
        } catch (err) {
          const code = errCode(err);
          if (code === 'ENOENT') break;
          if (code !== 'EBUSY' || attempt >= 20) throw new Error(`cannot remove cgroup ${dir}: ${code}`);
          await sleep(50);
        }
      }
    }
  }
}

async function readProcs(dir: string): Promise<number[]> {
  const text = await readText(path.join(dir, 'cgroup.procs'));
  return text
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

/** One pid per write: the kernel takes a single id per write(2). Exited processes are skipped. */
async function movePid(dir: string, pid: number): Promise<void> {
  if (!Number.isInteger(pid) || pid <= 0) throw new RangeError(`invalid pid ${pid}`);
  try {
    await fsp.writeFile(path.join(dir, 'cgroup.procs'), String(pid));
  } catch (err) {
    if (errCode(err) === 'ESRCH') return;
    throw new Error(`cannot move pid ${pid} into ${dir}: ${errCode(err)}`);
  }
}

