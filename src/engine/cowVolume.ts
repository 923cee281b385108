import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { filesystemType, StorageDriver } from './storage';
import { HostLayout } from './layout';

/** What `up` found or did; `message` is the one line to show (none when there is nothing to say). */
export type CowVolumeResult =
  | { state: 'created' | 'mounted' | 'reused'; image: string; mountpoint: string; message: string }
  /** The branches dir is on btrfs already (the data dir lives on btrfs): nothing to mount. */
  | { state: 'native'; message?: undefined }
  /** LAMPION_STORAGE_DRIVER=copy and no image from an earlier start: nothing made. */
  | { state: 'off'; message?: undefined }
  | { state: 'unavailable'; reason: string; message: string };

export interface CowVolumeOptions {
  /** Apparent size of a new image (truncate(1) syntax: 16G, 512M); an existing image keeps its size. */
  imageSize: string;
  /** LAMPION_STORAGE_DRIVER when not auto. `copy` makes no image. */
  storageDriver?: StorageDriver;
  /** Default `<data dir>/btrfs.img`. */
  image?: string;
}

/** scripts/btrfs-volume.sh, from src/engine or dist/src/engine. */
function volumeScript(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'scripts', 'btrfs-volume.sh');
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error(`scripts/btrfs-volume.sh not found above ${__dirname}`);
}

function runScript(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile('bash', [volumeScript(), ...args], { encoding: 'utf8', timeout: 600_000, cwd: '/' }, (err, _stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stderr: stderr || (err && !stderr ? err.message : '') });
    });
  });
}

/** The script's own reason ("[btrfs-volume] cannot: …"), else its last line. */
function scriptReason(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const cannot = lines.find((l) => l.includes('cannot: '));
  const line = cannot ? cannot.slice(cannot.indexOf('cannot: ') + 'cannot: '.length) : lines.at(-1) ?? 'unknown error';
  return line.replace(/^\[btrfs-volume\]\s*/, '');
}

function isMountpoint(dir: string): boolean {
  try {
    const st = fs.statSync(dir);
    const parent = fs.statSync(path.dirname(dir));
    return st.dev !== parent.dev || st.ino === parent.ino;
  } catch {
    return false;
  }
}

const HOW =
  'for copy-on-write branches run the start as root on a kernel with btrfs and loop devices (in a container: --privileged), or put LAMPION_DATA_DIR on a btrfs filesystem';

/**
 * Copy-on-write branches on any disk: a sparse btrfs image inside the data dir, loop-mounted at
 * the branches dir, so the btrfs storage driver (O(1) snapshot forks) works on ext4 too. The
 * image is made once by scripts/btrfs-volume.sh and mounted again at every start; `down`
 * unmounts it (after the computes stopped) and detaches its loop device.
 */
export class CowVolume {
  readonly image: string;
  readonly mountpoint: string;

  constructor(
    readonly layout: HostLayout,
    readonly opts: CowVolumeOptions,
  ) {
    this.image = opts.image ?? path.join(layout.dataDir, 'btrfs.img');
    this.mountpoint = layout.branchesDir;
  }

  private unavailable(reason: string, how = HOW): CowVolumeResult {
    return {
      state: 'unavailable',
      reason,
      message: `copy-on-write branches are off, using the copy driver (each branch is a full copy): ${reason}; ${how} (LAMPION_STORAGE_DRIVER=copy silences this)`,
    };
  }

  async up(): Promise<CowVolumeResult> {
    const mnt = this.mountpoint;
    const imageExists = fs.existsSync(this.image);
    // Opting out makes nothing; an image from an earlier start still holds branch data, so it is mounted.
    if (this.opts.storageDriver === 'copy' && !imageExists) return { state: 'off' };

    const probe = fs.existsSync(mnt) ? mnt : this.layout.dataDir;
    const fsType = await filesystemType(fs.existsSync(probe) ? probe : '/');
    // stat -f names ext4 "ext2/ext3".
    const fsName = fsType === 'ext2/ext3' ? 'ext2/3/4' : fsType;
    if (fsType === 'btrfs') {
      if (!(imageExists && isMountpoint(mnt))) return { state: 'native' };
      // Left mounted by a run that did not stop cleanly: use it as it is.
      const r = await runScript(['up', mnt, this.opts.imageSize, this.image]);
      if (r.code !== 0) return this.unavailable(scriptReason(r.stderr));
      return { state: 'reused', image: this.image, mountpoint: mnt, message: `branch data: btrfs image ${this.image} was still mounted at ${mnt} (earlier run not stopped cleanly); using it, branches are copy-on-write snapshots` };
    }

    if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
      return this.unavailable(`${mnt} is on ${fsName}, not btrfs, and mounting a btrfs image needs root (running as uid ${process.getuid?.() ?? '?'})`);
    }
    const entries = fs.existsSync(mnt) && !isMountpoint(mnt) ? fs.readdirSync(mnt) : [];
    if (entries.length > 0) {
      return this.unavailable(
        `${mnt} already holds ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'} (copy-driver branch data from an earlier start) on ${fsName}, and a btrfs image mounted over it would hide them`,
        'for copy-on-write branches start with a new, empty LAMPION_DATA_DIR, or put the data dir on a btrfs filesystem',
      );
    }

    const r = await runScript(['up', mnt, this.opts.imageSize, this.image]);
    if (r.code !== 0) return this.unavailable(scriptReason(r.stderr));
    const mountedType = await filesystemType(mnt);
    if (mountedType !== 'btrfs') return this.unavailable(`${mnt} is on ${mountedType} after mounting ${this.image}`);
    const optedOut = this.opts.storageDriver === 'copy' ? ' (LAMPION_STORAGE_DRIVER=copy: new branches are still full copies)' : '';
    if (!imageExists) {
      return { state: 'created', image: this.image, mountpoint: mnt, message: `branch data: created a sparse ${this.opts.imageSize} btrfs image ${this.image} and mounted it at ${mnt}: branches are copy-on-write snapshots (LAMPION_STORAGE_DRIVER=copy opts out)` };
    }
    return { state: 'mounted', image: this.image, mountpoint: mnt, message: `branch data: mounted btrfs image ${this.image} at ${mnt}${optedOut || ': branches are copy-on-write snapshots'}` };
  }

  /** Unmounts and detaches the loop device; idempotent. Throws with the reason when files are still open there. */
  async down(): Promise<void> {
    const r = await runScript(['down', this.mountpoint, this.image]);
    if (r.code !== 0) throw new Error(`could not unmount ${this.mountpoint}: ${scriptReason(r.stderr)}`);
  }
}
