import type pg from 'pg';

// The driver's own value conversion (Dates, arrays, Buffers, JSON), as its Query uses it.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { prepareValue } = require('pg/lib/utils') as { prepareValue(v: unknown): unknown };

export interface BoundedResult {
  fields: { name: string; dataTypeID: number }[];
  /** At most `maxRows` + 1 rows: one more than the cap says there were more. */
  rows: unknown[][];
  /** The whole command tag ("CREATE TABLE", "INSERT 0 5"); undefined when the rows ran past the cap. */
  commandTag?: string;
}

interface TypeParsers {
  getTypeParser(oid: number, format?: 'text' | 'binary'): (v: string) => unknown;
}

interface Connection {
  stream: { cork(): void; uncork(): void };
  parse(q: { text: string }): void;
  bind(c: { values: unknown[] | null; valueMapper: (v: unknown) => unknown }): void;
  describe(m: { type: 'P'; name: string }): void;
  execute(c: { portal: string; rows: number }): void;
  sync(): void;
  sendCopyFail(msg: string): void;
  once(ev: 'readyForQuery', cb: () => void): void;
}

/**
 * One statement in one round trip: Parse, Bind, Describe, Execute (at most `maxRows` + 1 rows)
 * and Sync go out in a single write, and the answer is read up to ReadyForQuery. Rows past the
 * cap are never sent by the server (the portal is suspended, then dropped at Sync or at the next
 * statement), so a huge result costs neither memory nor transfer. Resolves after ReadyForQuery,
 * so the session's transaction status is current.
 */
export class BoundedQuery implements pg.Submittable {
  private fields: BoundedResult['fields'] = [];
  private parsers: ((v: string) => unknown)[] = [];
  private rows: unknown[][] = [];
  private commandTag?: string;
  private error?: unknown;
  private settle!: { resolve: (r: BoundedResult) => void; reject: (err: unknown) => void };
  readonly done: Promise<BoundedResult>;

  constructor(
    private readonly text: string,
    private readonly values: unknown[] | undefined,
    private readonly maxRows: number,
    private readonly types: TypeParsers,
  ) {
    this.done = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
  }

  submit(connection: unknown): void {
    const con = connection as Connection;
    // Registered after the client's own listener: its transaction status is updated by then.
    // Also after an error, when the client no longer calls this query's handlers.
    con.once('readyForQuery', () => (this.error !== undefined ? this.settle.reject(this.error) : this.settle.resolve({ fields: this.fields, rows: this.rows, commandTag: this.commandTag })));
    con.stream.cork();
    try {
      con.parse({ text: this.text });
      con.bind({ values: this.values ?? null, valueMapper: prepareValue });
      con.describe({ type: 'P', name: '' });
      con.execute({ portal: '', rows: this.maxRows + 1 });
    } catch (err) {
      // A value the driver cannot convert: nothing was bound; Sync ends the exchange.
      this.error = err;
    } finally {
      con.sync();
      con.stream.uncork();
    }
  }

  handleRowDescription(msg: { fields: { name: string; dataTypeID: number; format?: string }[] }): void {
    this.fields = msg.fields.map((f) => ({ name: f.name, dataTypeID: f.dataTypeID }));
    this.parsers = msg.fields.map((f) => this.types.getTypeParser(f.dataTypeID, f.format === 'binary' ? 'binary' : 'text'));
  }

  handleDataRow(msg: { fields: (string | null)[] }): void {
    const row = new Array(msg.fields.length);
    for (let i = 0; i < msg.fields.length; i++) {
      const v = msg.fields[i];
      row[i] = v === null ? null : this.parsers[i](v);
    }
    this.rows.push(row);
  }

  handlePortalSuspended(): void {
    // More rows than the cap; Sync is already on its way.
  }

  handleCommandComplete(msg: { text: string }): void {
    this.commandTag = msg.text;
  }

  handleEmptyQuery(): void {}

  handleError(err: unknown): void {
    this.error ??= err;
  }

  handleReadyForQuery(): void {}

  handleCopyInResponse(connection: unknown): void {
    // The parser refuses COPY FROM STDIN before anything runs; should one get through, nobody has data for it.
    (connection as Connection).sendCopyFail('COPY FROM STDIN is not supported here');
  }

  handleCopyData(): void {}
}
