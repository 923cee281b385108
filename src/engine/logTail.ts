import { promises as fsp } from 'node:fs';

/**
 * The last `lines` lines of a file, read backwards in chunks: a log of any size costs what the
 * answer holds, not the whole file. A missing file has no lines.
 */
export async function lastLines(file: string, lines: number, chunkBytes = 64 * 1024): Promise<string[]> {
  let fh;
  try {
    fh = await fsp.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  try {
    const { size } = await fh.stat();
    let pos = size;
    let tail = Buffer.alloc(0);
    let newlines = 0;
    // One more newline than lines: the first line found may be cut.
    while (pos > 0 && newlines <= lines) {
      const n = Math.min(chunkBytes, pos);
      pos -= n;
      const buf = Buffer.alloc(n);
      await fh.read(buf, 0, n, pos);
      for (const b of buf) if (b === 10) newlines++;
      tail = Buffer.concat([buf, tail]);
    }
    const all = tail.toString('utf8').split('\n');
    if (all[all.length - 1] === '') all.pop();
    if (pos > 0) all.shift();
    return all.slice(-lines);
  } finally {
    await fh.close();
  }
}
