/**
 * Copy-on-write by default: the btrfs image that `npm start` mounts at the branches dir when the
 * data dir is not on btrfs (src/engine/cowVolume.ts over scripts/btrfs-volume.sh). Real loop
 * devices and mounts in temp data dirs on os.tmpdir(); no Temporal, API or proxy.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';

import { loadConfig } from '../src/config';
import { CowVolume } from '../src/engine/cowVolume';
import { HostLayout } from '../src/engine/layout';
import { createDataDir, detectDriver, filesystemType } from '../src/engine/storage';
import { mountCowVolume } from '../src/stack/cowVolume';

jest.setTimeout(120_000);

const isRoot = process.getuid?.() === 0;
const script = path.resolve(__dirname, '..', 'scripts', 'btrfs-volume.sh');
const made: string[] = [];

function tempDataDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lampion-cow-'));
  fs.chmodSync(dir, 0o711);
  made.push(dir);
  return dir;
}

function isMountpoint(dir: string): boolean {
  return spawnSync('mountpoint', ['-q', dir]).status === 0;
}

function loopDevicesOf(image: string): string[] {
  return execFileSync('losetup', ['-n', '-O', 'NAME', '-j', image], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

afterAll(() => {
  for (const dir of made) {
    const branches = path.join(dir, 'branches');
    const image = path.join(dir, 'btrfs.img');
    spawnSync('bash', [script, 'down', branches, image]);
    if (isMountpoint(branches)) spawnSync('umount', ['-l', branches]);
    if (isRoot && fs.existsSync(image)) for (const dev of loopDevicesOf(image)) spawnSync('losetup', ['-d', dev]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe('btrfs image at the branches dir', () => {
  if (!isRoot) {
    it('falls back to the copy driver, saying it needs root', async () => {
      const layout = new HostLayout(tempDataDir());
      const r = await new CowVolume(layout, { imageSize: '1G' }).up();
      expect(r.state).toBe('unavailable');
      expect(r.message).toMatch(/copy driver.*needs root/);
      expect(fs.existsSync(path.join(layout.dataDir, 'btrfs.img'))).toBe(false);
    });
    return;
  }

  const layout = new HostLayout(tempDataDir());
  const volume = new CowVolume(layout, { imageSize: '1G' });

  it('is created once, sparse, and mounted at the branches dir; the driver is then btrfs', async () => {
    expect(await filesystemType(layout.dataDir)).not.toBe('btrfs');
    const r = await volume.up();
    expect(r).toMatchObject({ state: 'created', image: volume.image, mountpoint: layout.branchesDir });
    expect(r.message).toMatch(/created a sparse 1G btrfs image .*btrfs\.img and mounted it at .*branches/);
    expect(r.message).not.toMatch(/\n/);

    expect(execFileSync('stat', ['-f', '-c', '%T', layout.branchesDir], { encoding: 'utf8' }).trim()).toBe('btrfs');
    expect(isMountpoint(layout.branchesDir)).toBe(true);
    const st = fs.statSync(volume.image);
    expect(st.size).toBe(1024 ** 3);
    expect(st.blocks * 512).toBeLessThan(st.size / 10);
    expect(st.mode & 0o777).toBe(0o600);
    expect(await detectDriver(layout.branchesDir)).toBe('btrfs');

    await createDataDir(layout.branchDataDir('br-one'), 'btrfs', undefined);
    fs.writeFileSync(path.join(layout.branchDataDir('br-one'), 'PG_VERSION'), '15\n');
    execFileSync('btrfs', ['subvolume', 'show', layout.branchDataDir('br-one')]);
  });

  it('a second up keeps the mount as it is (one loop device, same data)', async () => {
    const devices = loopDevicesOf(volume.image);
    expect(devices).toHaveLength(1);
    const r = await volume.up();
    expect(r.state).toBe('reused');
    expect(loopDevicesOf(volume.image)).toEqual(devices);
    expect(fs.readFileSync(path.join(layout.branchDataDir('br-one'), 'PG_VERSION'), 'utf8')).toBe('15\n');
  });

  it('down unmounts and leaves no loop device attached; the next up mounts the same data again', async () => {
    await volume.down();
    expect(isMountpoint(layout.branchesDir)).toBe(false);
    expect(loopDevicesOf(volume.image)).toEqual([]);
    expect(fs.readdirSync(layout.branchesDir)).toEqual([]);
    await volume.down(); // idempotent

    const r = await volume.up();
    expect(r.state).toBe('mounted');
    expect(r.message).toMatch(/mounted btrfs image .* at .*: branches are copy-on-write snapshots/);
    expect(fs.readFileSync(path.join(layout.branchDataDir('br-one'), 'PG_VERSION'), 'utf8')).toBe('15\n');
    await volume.down();
    expect(loopDevicesOf(volume.image)).toEqual([]);
  });

  it('refuses to mount over a data dir of an earlier version, which keeps its copy-driver branches', async () => {
    const old = new HostLayout(tempDataDir());
    fs.mkdirSync(old.branchDataDir('br-old'), { recursive: true });
    fs.writeFileSync(path.join(old.branchDataDir('br-old'), 'PG_VERSION'), '15\n');
    const v = new CowVolume(old, { imageSize: '1G' });
    const r = await v.up();
    expect(r.state).toBe('unavailable');
    if (r.state !== 'unavailable') return;
    expect(r.reason).toMatch(/already holds 1 entry .*earlier start.*would hide them/);
    expect(r.message).toMatch(/^copy-on-write branches are off, using the copy driver .*new, empty LAMPION_DATA_DIR/);
    expect(r.message).not.toMatch(/\n/);
    expect(fs.existsSync(v.image)).toBe(false);
    expect(isMountpoint(old.branchesDir)).toBe(false);
    expect(await detectDriver(old.branchesDir)).toBe('copy');
    expect(fs.readFileSync(path.join(old.branchDataDir('br-old'), 'PG_VERSION'), 'utf8')).toBe('15\n');

    // The script itself never mounts over files either.
    const up = spawnSync('bash', [script, 'up', old.branchesDir, '1G', v.image], { encoding: 'utf8' });
    expect(up.status).toBe(3);
    expect(up.stderr).toMatch(/not empty/);
    expect(fs.existsSync(v.image)).toBe(false);
  });

  it('LAMPION_STORAGE_DRIVER=copy makes nothing', async () => {
    const dir = tempDataDir();
    const c = loadConfig({ LAMPION_DATA_DIR: dir, LAMPION_AUTO_BTRFS: 'true', LAMPION_STORAGE_DRIVER: 'copy' });
    expect(await mountCowVolume(c, pino({ level: 'silent' }))).toBeUndefined();
    const r = await new CowVolume(new HostLayout(dir), { imageSize: '1G', storageDriver: 'copy' }).up();
    expect(r.state).toBe('off');
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('is off for embedded stacks unless LAMPION_AUTO_BTRFS is set (npm start sets it)', async () => {
    expect(loadConfig({}).autoBtrfs).toBe(false);
    expect(loadConfig({ LAMPION_AUTO_BTRFS: 'true' }).btrfsImageSize).toBe('16G');
    expect(() => loadConfig({ LAMPION_BTRFS_IMAGE_SIZE: 'big' })).toThrow(/LAMPION_BTRFS_IMAGE_SIZE/);
    const dir = tempDataDir();
    expect(await mountCowVolume(loadConfig({ LAMPION_DATA_DIR: dir }), pino({ level: 'silent' }))).toBeUndefined();
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
