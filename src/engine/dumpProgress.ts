/**
 * Progress of `pg_dump | pv | psql` without the dump passing through this process: the bytes
 * from pv's count (`pv -n -b`: one number per line, the last one when the stream ends), the
 * objects from pg_dump's `--verbose` log, which names each object of its table of contents as it
 * writes it:
 *
 *   pg_dump: creating TABLE "public.users"
 *   pg_dump: processing data for table "public.users"
 *   pg_dump: creating CONSTRAINT "public.users users_pkey"
 *
 * pg_dump logs an object before writing it, so the name is at most a pipe's buffers ahead of
 * what psql is loading.
 */
export interface DumpProgress {
  bytesDone: number;
  /** Objects of the table of contents begun so far (tables, indexes, data sections, …). */
  objectsDone: number;
  /** e.g. "TABLE DATA public.users". */
  currentObject?: string;
}

/** Splits a byte stream of text into whole lines (the last, unfinished one is kept for later). */
class Lines {
  private rest = '';
  push(chunk: string, onLine: (line: string) => void): void {
    const parts = (this.rest + chunk).split(/\r?\n|\r/);
    this.rest = (parts.pop() ?? '').slice(-4096);
    for (const p of parts) onLine(p);
  }
  end(onLine: (line: string) => void): void {
    if (this.rest) onLine(this.rest);
    this.rest = '';
  }
}

/** The object a verbose pg_dump line begins, as "TYPE name"; undefined for any other line. */
export function verboseObject(line: string): string | undefined {
  let m = /^pg_dump: processing data for table "(.*)"$/.exec(line);
  if (m) return `TABLE DATA ${m[1]}`;
  m = /^pg_dump: (?:creating|executing) ([A-Z][A-Z ]*?) "(.*)"$/.exec(line);
  return m ? `${m[1]} ${m[2]}` : undefined;
}

/**
 * Whether a line of pg_dump's stderr is a message for the user (an error, a warning, or text
 * that is not pg_dump's own log) rather than verbose progress.
 */
export function isDumpMessage(line: string): boolean {
  if (!line.trim()) return false;
  if (!line.startsWith('pg_dump: ')) return true;
  return /^pg_dump: (?:error|fatal|warning|detail|hint): /.test(line);
}

export class DumpProgressReader {
  readonly progress: DumpProgress = { bytesDone: 0, objectsDone: 0 };
  private readonly dumpLines = new Lines();
  private readonly countLines = new Lines();
  private messages: string[] = [];

  /** pg_dump's stderr (run with --verbose). */
  dumpLog(chunk: string): void {
    this.dumpLines.push(chunk, (l) => this.dumpLine(l));
  }

  /** pv's stderr (run with -n -b). */
  byteCount(chunk: string): void {
    this.countLines.push(chunk, (l) => {
      const n = /^\s*(\d+)\s*$/.exec(l);
      if (n) this.progress.bytesDone = Number(n[1]);
    });
  }

  /** pg_dump's messages for the user, without its progress lines (the last 16 kB of them). */
  dumpMessages(): string {
    this.dumpLines.end((l) => this.dumpLine(l));
    return this.messages.join('\n');
  }

  private dumpLine(line: string): void {
    const obj = verboseObject(line);
    if (obj) {
      this.progress.objectsDone++;
      this.progress.currentObject = obj;
    } else if (isDumpMessage(line)) {
      this.messages.push(line.slice(0, 2048));
      while (this.messages.length > 8 && this.messages.join('\n').length > 16_384) this.messages.shift();
    }
  }
}
