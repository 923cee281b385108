import path from 'node:path';
import { promises as fsp } from 'node:fs';
import type { HostLayout } from './layout';
import { isPortFree } from './ports';
import { KeyedLock } from './keyedLock';

/**
 * The host's own record of which compute port belongs to which endpoint: a `port` file in each
 * endpoint's dir. Ports belong to the machine that binds them, so a host worker allocates them
 * without the catalog; removing an endpoint's files releases its port.
 */
export class PortRegistry {
  private readonly lock = new KeyedLock();

  constructor(
    readonly layout: HostLayout,
    readonly range: { min: number; max: number },
  ) {}

  private file(endpointId: string) {
    return path.join(this.layout.endpointDir(endpointId), 'port');
  }

  async portOf(endpointId: string): Promise<number | undefined> {
    const n = Number((await fsp.readFile(this.file(endpointId), 'utf8').catch(() => '')).trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  }

  private async taken(): Promise<Set<number>> {
    const ids = await fsp.readdir(this.layout.endpointsDir).catch(() => [] as string[]);
    const ports = await Promise.all(ids.map((id) => this.portOf(id)));
    return new Set(ports.filter((p): p is number => p !== undefined));
  }

  /** Records a port the catalog already knows (data dirs made before the host kept its own record). */
  async adopt(endpointId: string, port: number): Promise<void> {
    await this.lock.run('ports', async () => {
      if ((await this.portOf(endpointId)) !== undefined) return;
      await fsp.mkdir(this.layout.endpointDir(endpointId), { recursive: true, mode: 0o711 });
      await fsp.writeFile(this.file(endpointId), String(port));
    });
  }

  /** The endpoint's port: the one it has, or a free one now recorded. Idempotent. */
  reserve(endpointId: string): Promise<number> {
    return this.lock.run('ports', async () => {
      const existing = await this.portOf(endpointId);
      if (existing !== undefined) return existing;
      const taken = await this.taken();
      const span = this.range.max - this.range.min + 1;
      const offset = Math.floor(Math.random() * span);
      for (let i = 0; i < span; i++) {
        const port = this.range.min + ((offset + i) % span);
        if (taken.has(port) || !(await isPortFree(port))) continue;
        await fsp.mkdir(this.layout.endpointDir(endpointId), { recursive: true, mode: 0o711 });
        const tmp = `${this.file(endpointId)}.tmp`;
        await fsp.writeFile(tmp, String(port));
        await fsp.rename(tmp, this.file(endpointId));
        return port;
      }
      throw new NoFreePortError(`no free port in ${this.range.min}-${this.range.max}`);
    });
  }
}

export class NoFreePortError extends Error {}
