import fs from 'node:fs';

export default async function globalTeardown() {
  const g = (globalThis as any).__lampion;
  if (!g) return;
  await g.temporal.stop();
  await g.control.stop();
  fs.rmSync(g.root, { recursive: true, force: true });
}
