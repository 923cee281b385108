/** A statement built by a pure function: SQL text plus the values of its $n parameters. */
export interface Statement {
  text: string;
  values?: unknown[];
}
