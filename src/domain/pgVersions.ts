/** One Postgres install per major, as LAMPION_PG_BINDIRS names them. */
export interface PgBinDir {
  major: number;
  binDir: string;
}

/** `15=/usr/lib/postgresql/15/bin,18=/opt/…/bin` → pairs; the format of LAMPION_PG_BINDIRS. */
export function parseBinDirs(spec: string): PgBinDir[] {
  const out: PgBinDir[] = [];
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = part.match(/^(\d{2})=(\/.+)$/);
    if (!m) throw new Error(`"${part}" is not MAJOR=/absolute/bin/dir`);
    const major = Number(m[1]);
    if (out.some((o) => o.major === major)) throw new Error(`major ${major} is named twice`);
    out.push({ major, binDir: m[2] });
  }
  if (!out.length) throw new Error('names no install');
  return out;
}
