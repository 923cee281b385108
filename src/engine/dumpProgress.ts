import { Transform, TransformCallback } from 'node:stream';

/**
 * Progress of a plain-format dump as it streams by: bytes, and the object being loaded, from the
 * comment pg_dump writes before each object of its table of contents:
 *
 *   -- Name: users; Type: TABLE; Schema: public; Owner: -
 *   -- Data for Name: users; Type: TABLE DATA; Schema: public; Owner: -
 *
 * Only lines that start with those prefixes are read; everything else (row data, function bodies)
 * passes through untouched and is never decoded.
 */
export interface DumpProgress {
  bytesDone: number;
  /** Objects of the table of contents seen so far (tables, indexes, data sections, …). */
  objectsDone: number;
  /** e.g. "TABLE DATA public.users". */
  currentObject?: string;
}

const PREFIXES = ['-- Name: ', '-- Data for Name: '].map((p) => Buffer.from(p, 'latin1'));
/** What both prefixes start with, after a newline: one search per chunk finds both (and little else). */
const NEEDLE = Buffer.from('\n-- ', 'latin1');
/** Longer lines cannot be a TOC comment (names are at most 63 bytes each). */
const MAX_LINE = 2048;

/** Parses one TOC comment line (without its newline) into "TYPE schema.name". */
export function tocObject(line: string): string | undefined {
  const m = /^-- (?:Data for )?Name: (.*); Type: ([^;]+); Schema: ([^;]*); Owner: /.exec(line);
  if (!m) return undefined;
  const [, name, type, schema] = m;
  return schema && schema !== '-' ? `${type} ${schema}.${name}` : `${type} ${name}`;
}

function startsToc(buf: Buffer, at: number): boolean {
  return PREFIXES.some((p) => buf.length - at >= p.length && buf.compare(p, 0, p.length, at, at + p.length) === 0);
}

/** Whether a partial line could still turn out to be a TOC comment. */
function mayStartToc(partial: Buffer): boolean {
  return PREFIXES.some((p) => {
    const n = Math.min(p.length, partial.length);
    return partial.compare(p, 0, n, 0, n) === 0;
  });
}

export class DumpScanner {
  readonly progress: DumpProgress = { bytesDone: 0, objectsDone: 0 };
  /** The unfinished last line of the previous chunk, when it may be a TOC comment. */
  private carry: Buffer | undefined;
  /** Whether the previous chunk ended with a newline (or there was none). */
  private atLineStart = true;

  push(chunk: Buffer): void {
    this.progress.bytesDone += chunk.length;
    let pos = 0;
    if (this.carry) {
      const nl = chunk.indexOf(10);
      if (nl < 0) {
        const joined = Buffer.concat([this.carry, chunk]);
        this.carry = joined.length <= MAX_LINE && mayStartToc(joined) ? joined : undefined;
        return;
      }
      this.line(Buffer.concat([this.carry, chunk.subarray(0, nl)]));
      this.carry = undefined;
      pos = nl + 1;
    } else if (!this.atLineStart) {
      const nl = chunk.indexOf(10);
      if (nl < 0) return;
      pos = nl + 1;
    }
    // From here `pos` is always the start of a line.
    for (;;) {
      if (pos >= chunk.length) {
        this.atLineStart = true;
        return;
      }
      if (startsToc(chunk, pos)) {
        const nl = chunk.indexOf(10, pos);
        if (nl < 0) {
          const rest = chunk.subarray(pos);
          this.carry = rest.length <= MAX_LINE ? Buffer.from(rest) : undefined;
          this.atLineStart = false;
          return;
        }
        this.line(chunk.subarray(pos, nl));
        pos = nl + 1;
        continue;
      }
      // The next comment line: read above when it is a TOC entry, passed over when not.
      const next = chunk.indexOf(NEEDLE, pos);
      if (next >= 0) {
        pos = next + 1;
        continue;
      }
      // No TOC comment starts in the rest; its last line may be the beginning of one.
      const lastNl = chunk.lastIndexOf(10);
      const tail = chunk.subarray(Math.max(lastNl + 1, pos));
      this.atLineStart = tail.length === 0;
      this.carry = tail.length && mayStartToc(tail) ? Buffer.from(tail) : undefined;
      return;
    }
  }

  private line(buf: Buffer): void {
    if (!startsToc(buf, 0)) return;
    const obj = tocObject(buf.toString('utf8'));
    if (!obj) return;
    this.progress.objectsDone++;
    this.progress.currentObject = obj;
  }

  /** A pass-through stream that scans what flows through it. */
  transform(): Transform {
    return new Transform({
      // Room for a few of the pipe's 64 kB reads: pg_dump keeps writing while psql takes a chunk.
      highWaterMark: 1 << 20,
      transform: (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) => {
        this.push(chunk);
        cb(null, chunk);
      },
    });
  }
}
