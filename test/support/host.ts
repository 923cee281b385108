import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import type { HostLayout } from '../../src/engine/layout';

/**
 * Postgres processes (postmasters, initdb's) working under `dir`, leaving out the spare clusters
 * the host makes in the background (src/engine/spareClusters.ts): those are the platform's own.
 */
export function postgresUnder(dir: string): string[] {
  let out = '';
  try {
    out = execFileSync('pgrep', ['-a', '-f', `postgres.*${dir}`], { encoding: 'utf8' });
  } catch {
    return [];
  }
  return out
    .trim()
    .split('\n')
    .filter((l) => l && !l.includes('/_spares/'));
}

/** The branch data dirs under the branches dir, without the platform's own (_bases, _spares). */
export function branchDirNames(layout: HostLayout): string[] {
  return fs
    .readdirSync(layout.branchesDir)
    .filter((n) => !n.startsWith('_'))
    .sort();
}
