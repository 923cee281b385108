import type { Logger } from 'pino';
import { Config, ConfigError } from '../config';
import { CowVolume } from '../engine/cowVolume';
import { HostLayout } from '../engine/layout';

/**
 * At a start with LAMPION_AUTO_BTRFS (default under `npm start`): branch data on a loop-mounted
 * btrfs image when the data dir is not on btrfs, or the copy driver with one line saying why.
 * Returns the volume to unmount at stop, when one was mounted.
 */
export async function mountCowVolume(c: Config, logger: Logger): Promise<CowVolume | undefined> {
  if (!c.autoBtrfs) return undefined;
  const volume = new CowVolume(new HostLayout(c.dataDir), { imageSize: c.btrfsImageSize, storageDriver: c.storageDriver });
  const r = await volume.up();
  if (r.state === 'unavailable') {
    if (c.storageDriver === 'btrfs') throw new ConfigError(`LAMPION_STORAGE_DRIVER=btrfs, but ${r.reason}`);
    logger.warn(r.message);
    return undefined;
  }
  if (r.message) logger.info(r.message);
  return r.state === 'created' || r.state === 'mounted' || r.state === 'reused' ? volume : undefined;
}

/** After the computes stopped: nothing stays mounted, or one line says why it had to. */
export async function unmountCowVolume(volume: CowVolume | undefined, logger: Logger): Promise<void> {
  if (!volume) return;
  await volume.down().catch((err) => logger.error(`${err instanceof Error ? err.message : err}; it stays mounted and the next start uses it`));
}
