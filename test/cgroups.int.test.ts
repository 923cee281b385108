import os from 'node:os';
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { spawn, ChildProcess } from 'node:child_process';
import { CgroupDetection, CgroupLimiter, detectCgroups } from '../src/engine/cgroups';
import { postgresPids } from '../src/engine/postmaster';
import { randomToken } from '../src/domain/ids';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dirExists = (p: string) =>
  fsp.stat(p).then(
    (s) => s.isDirectory(),
    () => false,
  );
const readTrim = async (p: string) => (await fsp.readFile(p, 'utf8')).trim();
const procsOf = async (dir: string) => (await readTrim(path.join(dir, 'cgroup.procs'))).split('\n').filter(Boolean).map(Number);

const children: ChildProcess[] = [];
function spawnChild(cmd: string, args: string[], cwd = '/'): ChildProcess {
  const child = spawn(cmd, args, { stdio: 'ignore', cwd });
  children.push(child);
  return child;
}

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

describe('cgroups on this machine', () => {
  let detection: CgroupDetection;
  let limiter: CgroupLimiter;
  const endpointId = `ep-cgtest-${randomToken(8)}`;
  const rootDirsBefore = new Map<string, boolean>();

  beforeAll(async () => {
    // Note which root groups predate the test so only those it created are cleaned up.
    for (const mount of ['cpu', 'cpuacct', 'memory'].map((c) => `/sys/fs/cgroup/${c}`).concat('/sys/fs/cgroup')) {
      rootDirsBefore.set(path.join(mount, 'lampion'), await dirExists(path.join(mount, 'lampion')));
    }
    detection = await detectCgroups();
    limiter = new CgroupLimiter(detection);
  });

  afterAll(async () => {
    if (limiter?.enforced) await limiter.remove(endpointId);
    for (const [dir, existed] of rootDirsBefore) if (!existed) await fsp.rmdir(dir).catch(() => undefined);
  });

  it('detects a version and says why when it cannot enforce', () => {
    expect(['v1', 'v2', 'none']).toContain(detection.version);
    if (!detection.writable) expect(detection.reason).toEqual(expect.any(String));
    expect(limiter.enforced).toBe(detection.version !== 'none' && detection.writable);
  });

  it('confines processes to the CPU quota and memory limit, then removes the group', async () => {
    const sleeper = spawnChild('sleep', ['30']);
    const busy = spawnChild(process.execPath, ['-e', 'for(;;){}']);
    const pids = [sleeper.pid!, busy.pid!];
    const limits = { vcpu: 0.25, memoryBytes: 256 * 1024 * 1024 };

    if (!limiter.enforced) {
      // Without usable cgroups the limiter must say so and do nothing rather than fail.
      expect(limiter.enforced).toBe(false);
      expect(limiter.reason).toEqual(expect.any(String));
      await expect(limiter.apply(endpointId, pids, limits)).resolves.toBeUndefined();
      expect(await limiter.cpuUsageSeconds(endpointId)).toBeUndefined();
      await expect(limiter.remove(endpointId)).resolves.toBeUndefined();
      return;
    }

    await limiter.apply(endpointId, pids, limits);
    const dirs = limiter.groupDirs(endpointId)!;
    const distinct = [...new Set([dirs.cpu, dirs.cpuacct, dirs.memory].filter((d): d is string => Boolean(d)))];
    for (const dir of distinct) {
      expect(await procsOf(dir)).toEqual(expect.arrayContaining(pids));
    }
    for (const pid of pids) {
      const membership = await fsp.readFile(`/proc/${pid}/cgroup`, 'utf8');
      expect(membership).toContain(`/lampion/${endpointId}`);
    }
    if (detection.version === 'v1') {
      expect(await readTrim(path.join(dirs.cpu, 'cpu.cfs_period_us'))).toBe('100000');
      expect(await readTrim(path.join(dirs.cpu, 'cpu.cfs_quota_us'))).toBe('25000');
      expect(await readTrim(path.join(dirs.memory, 'memory.limit_in_bytes'))).toBe(String(256 * 1024 * 1024));
    } else {
      expect(await readTrim(path.join(dirs.cpu, 'cpu.max'))).toBe('25000 100000');
      expect(await readTrim(path.join(dirs.memory, 'memory.max'))).toBe(String(256 * 1024 * 1024));
    }

    const u0 = await limiter.cpuUsageSeconds(endpointId);
    expect(u0).toEqual(expect.any(Number));
    const t0 = process.hrtime.bigint();
    await sleep(2000);
    const u1 = (await limiter.cpuUsageSeconds(endpointId))!;
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    const used = u1 - u0!;
    // Unthrottled, the loop would use ~1 s per second; 0.25 vCPU allows 0.25 s (the kernel overruns by a few %).
    expect(used).toBeGreaterThan(0.02);
    expect(used).toBeLessThan(0.3 * elapsed + 0.1);

    await limiter.update(endpointId, { vcpu: 0.5, memoryBytes: 512 * 1024 * 1024 });
    if (detection.version === 'v1') {
      expect(await readTrim(path.join(dirs.cpu, 'cpu.cfs_quota_us'))).toBe('50000');
      expect(await readTrim(path.join(dirs.memory, 'memory.limit_in_bytes'))).toBe(String(512 * 1024 * 1024));
    } else {
      expect(await readTrim(path.join(dirs.cpu, 'cpu.max'))).toBe('50000 100000');
    }

    // The processes are still alive: remove must move them out before rmdir.
    await limiter.remove(endpointId);
    for (const dir of distinct) expect(await dirExists(dir)).toBe(false);
    for (const pid of pids) {
      expect(await fsp.readFile(`/proc/${pid}/cgroup`, 'utf8')).not.toContain(endpointId);
    }
    await expect(limiter.remove(endpointId)).resolves.toBeUndefined();
    expect(await limiter.cpuUsageSeconds(endpointId)).toBeUndefined();
    await expect(limiter.update(endpointId, limits)).rejects.toThrow(/apply it first/);
  });

  it('rejects endpoint ids that are not safe directory names', async () => {
    await expect(limiter.apply('../etc', [], { vcpu: 1, memoryBytes: 1 << 30 })).rejects.toThrow(/invalid endpoint id/);
  });
});

describe('limiter without cgroups', () => {
  it('is a no-op that reports limits as not enforced', async () => {
    const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'lampion-nocg-'));
    try {
      const mounts = path.join(tmp, 'mounts');
      await fsp.writeFile(mounts, 'proc /proc proc rw 0 0\ncgroup2 /x/unified cgroup2 rw 0 0\n');
      const limiter = await CgroupLimiter.create({ root: path.join(tmp, 'cgroup'), mountsFile: mounts });
      expect(limiter.detection).toMatchObject({ version: 'none', writable: false });
      expect(limiter.enforced).toBe(false);
      expect(limiter.reason).toMatch(/no cgroup v2/);
      await limiter.apply('ep-none', [process.pid], { vcpu: 1, memoryBytes: 1 << 30 });
      await limiter.update('ep-none', { vcpu: 2, memoryBytes: 1 << 30 });
      expect(await limiter.cpuUsageSeconds('ep-none')).toBeUndefined();
      expect(await limiter.pids('ep-none')).toEqual([]);
      await limiter.remove('ep-none');
      await expect(limiter.apply('ep-none', [], { vcpu: 0, memoryBytes: 1 })).rejects.toThrow(RangeError);
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  });
});

describe('cgroup v2 file formats (on a stand-in directory tree)', () => {
  it('enables controllers for the root group and writes cpu.max / memory.max / cgroup.procs', async () => {
    const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'lampion-cg2-'));
    try {
      await fsp.writeFile(path.join(root, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
      await fsp.writeFile(path.join(root, 'cgroup.subtree_control'), '');
      // Files the kernel would create once the controllers are enabled.
      await fsp.mkdir(path.join(root, 'lampion'));
      await fsp.writeFile(path.join(root, 'lampion', 'cpu.max'), 'max 100000\n');
      await fsp.writeFile(path.join(root, 'lampion', 'memory.max'), 'max\n');

      const limiter = await CgroupLimiter.create({ root });
      expect(limiter.detection).toMatchObject({ version: 'v2', writable: true });
      expect(await readTrim(path.join(root, 'lampion', 'cgroup.subtree_control'))).toBe('+memory');

      await limiter.apply('ep-v2', [process.pid], { vcpu: 0.25, memoryBytes: 512 * 1024 * 1024 });
      const dir = path.join(root, 'lampion', 'ep-v2');
      expect(await readTrim(path.join(dir, 'cpu.max'))).toBe('25000 100000');
      expect(await readTrim(path.join(dir, 'memory.max'))).toBe(String(512 * 1024 * 1024));
      expect(await readTrim(path.join(dir, 'cgroup.procs'))).toBe(String(process.pid));

      await fsp.writeFile(path.join(dir, 'cpu.stat'), 'usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n');
      expect(await limiter.cpuUsageSeconds('ep-v2')).toBeCloseTo(1.5, 6);

      await limiter.update('ep-v2', { vcpu: 2, memoryBytes: 4 * 1024 ** 3 });
      expect(await readTrim(path.join(dir, 'cpu.max'))).toBe('200000 100000');
      expect(await readTrim(path.join(dir, 'memory.max'))).toBe(String(4 * 1024 ** 3));
    } finally {
      await fsp.rm(root, { recursive: true, force: true });
    }
  });

  it('explains a v2 host without the needed controllers', async () => {
    const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'lampion-cg2-'));
    try {
      await fsp.writeFile(path.join(root, 'cgroup.controllers'), 'hugetlb\n');
      const d = await detectCgroups({ root });
      expect(d).toMatchObject({ version: 'v2', writable: false });
      expect(d.reason).toMatch(/cpu and memory controller/);
    } finally {
      await fsp.rm(root, { recursive: true, force: true });
    }
  });
});

describe('postgresPids', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lampion-pgpids-'));
  });
  afterAll(async () => {
    await fsp.rm(dataDir, { recursive: true, force: true });
  });

  it('finds the postmaster and every descendant', async () => {
    // A stand-in postmaster: runs in its data dir with children and a grandchild.
    const pm = spawnChild('sh', ['-c', 'sleep 30 & sleep 30 & (sleep 30 & wait) & wait'], dataDir);
    await fsp.writeFile(path.join(dataDir, 'postmaster.pid'), `${pm.pid}\n${dataDir}\n1700000000\n5432\n`);
    let pids: number[] = [];
    for (let i = 0; i < 50 && pids.length < 5; i++) {
      await sleep(50);
      pids = await postgresPids(dataDir);
    }
    expect(pids[0]).toBe(pm.pid);
    expect(pids).toHaveLength(5);
    for (const pid of pids) expect(await fsp.readlink(`/proc/${pid}/cwd`)).toBe(await fsp.realpath(dataDir));
    pm.kill('SIGKILL');
  });

  it('ignores a missing or stale pid file', async () => {
    const empty = await fsp.mkdtemp(path.join(os.tmpdir(), 'lampion-pgpids-'));
    try {
      expect(await postgresPids(empty)).toEqual([]);
      // A live process that is not running in this data dir (the pid was reused).
      await fsp.writeFile(path.join(empty, 'postmaster.pid'), `${process.pid}\n${empty}\n`);
      expect(await postgresPids(empty)).toEqual([]);
      await fsp.writeFile(path.join(empty, 'postmaster.pid'), `999999999\n${empty}\n`);
      expect(await postgresPids(empty)).toEqual([]);
      await fsp.writeFile(path.join(empty, 'postmaster.pid'), 'garbage\n');
      expect(await postgresPids(empty)).toEqual([]);
    } finally {
      await fsp.rm(empty, { recursive: true, force: true });
    }
  });
});
