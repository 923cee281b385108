export interface ConnectionTarget {
  user: string;
  password: string;
  host: string;
  port: number;
  endpointId: string;
  database?: string;
}

/**
 * The user-facing DSN goes through the proxy: the endpoint id rides in the database name
 * (`ep-x.postgres`), which every client passes through untouched, unlike SNI or options.
 */
export function proxyConnectionString(t: ConnectionTarget): string {
  const db = `${t.endpointId}.${t.database ?? 'postgres'}`;
  const host = t.host.includes(':') && !t.host.startsWith('[') ? `[${t.host}]` : t.host;
  return `postgresql://${encodeURIComponent(t.user)}:${encodeURIComponent(t.password)}@${host}:${t.port}/${encodeURIComponent(db)}?sslmode=require`;
}
