import path from 'node:path';
import { parseBinDirs } from '../../src/domain/pgVersions';
import { PgInstalls } from '../../src/engine/pgInstalls';
import { resolveOsUser } from '../../src/engine/exec';

/** The installs the suite runs on, as scripts/ensure-deps.sh exported them. */
export function testBinDirs() {
  return parseBinDirs(process.env.LAMPION_PG_BINDIRS ?? '15=/usr/lib/postgresql/15/bin');
}

/** Majors installed here, ascending: the ones a test runs "on both majors". */
export const TEST_MAJORS = testBinDirs()
  .map((i) => i.major)
  .sort((a, b) => a - b);

export function testPgInstalls(): PgInstalls {
  const user = resolveOsUser(process.env.LAMPION_PG_OS_USER);
  return new PgInstalls(testBinDirs().map((i) => ({ ...i, user })));
}

/**
 * Client programs a user would run (psql, pg_dump) with TLS: Debian's, the embedded 18 build has
 * no OpenSSL. The oldest install is Debian's here.
 */
export function clientBin(name: string, major?: number): string {
  const dirs = testBinDirs();
  const dir = major === undefined ? dirs.sort((a, b) => a.major - b.major)[0] : dirs.find((d) => d.major === major);
  if (!dir) throw new Error(`no PostgreSQL ${major} installed for the tests`);
  return path.join(dir.binDir, name);
}
