import type { TestStack } from './stack';

/** Console routes of one project's primary endpoint, and its SQL as the user would run it. */
export function consoleOf(t: TestStack, project: { id: string; endpoint_id: string }) {
  const ep = `/v1/projects/${project.id}/endpoints/${project.endpoint_id}`;
  return {
    ep,
    req: (method: string, path: string, body?: unknown, key?: string) => t.request(method, `${ep}${path}`, { body, ...(key ? { key } : {}) }),
    async sql(query: string, database?: string): Promise<any[]> {
      const r = await t.request('POST', `${ep}/sql`, { body: { query, ...(database ? { database } : {}) } });
      if (r.status !== 200) throw new Error(`${query}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body.rows;
    },
  };
}

/** A name that is SQL if pasted: created literally, or refused, never run. */
export const HOSTILE = 'x"; DROP TABLE canary; --';
