import fs from 'node:fs';

export default async function globalTeardown() {
  const btrfsDir = (globalThis as any).__lampionBtrfsDir;
  // The volume stays mounted for the next run; only this run's dir goes.
  if (btrfsDir) fs.rmSync(btrfsDir, { recursive: true, force: true });
  const g = (globalThis as any).__lampion;
  if (!g) return;
  await g.temporal.stop();
  await g.control.stop();
  fs.rmSync(g.root, { recursive: true, force: true });
}
