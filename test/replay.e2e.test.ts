/**
 * Query replay through the API: the source's top statements from pg_stat_statements replayed on
 * another branch with EXPLAIN (ANALYZE, BUFFERS) in rolled-back transactions; a dropped index is
 * a regression with its plan change as the reason, an unchanged branch none, and nothing the
 * replayed statements write survives.
 */
import { startTestStack, TestStack } from './support/stack';
import { psqlOk } from './support/clients';

jest.setTimeout(300_000);

describe('query replay', () => {
  let t: TestStack;
  let project: any;
  const path = (p: string) => `/v1/projects/${project.id}${p}`;
  const replay = (body: unknown) => t.request('POST', path('/replay'), { body });

  async function branch(name: string) {
    const res = await t.request('POST', path('/branches'), { body: { name } });
    expect(res.status).toBe(201);
    return res.body;
  }

  beforeAll(async () => {
    t = await startTestStack();
    const res = await t.request('POST', '/v1/projects', { body: { name: 'replay' } });
    expect(res.status).toBe(201);
    project = res.body;
    await psqlOk(
      project.connection_string,
      `CREATE TABLE customers (id int PRIMARY KEY, name text);
       INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 2000) g;
       CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL, total numeric(10, 2), note text);
       INSERT INTO orders (customer_id, total, note) SELECT g % 2000 + 1, g % 97, repeat('x', 40) FROM generate_series(1, 40000) g;
       CREATE INDEX orders_customer_idx ON orders (customer_id);
       CREATE TABLE audit_log (id serial PRIMARY KEY, note text);`,
    );
    await psqlOk(project.connection_string, 'VACUUM ANALYZE');
    // The setup is not the workload: statistics start here.
    expect((await t.request('POST', path(`/endpoints/${project.endpoint_id}/analyse/reset-stats`))).status).toBe(200);
    // A workload: pg_stat_statements normalizes the constants to $1.
    const workload = Array.from({ length: 30 }, (_, i) => `SELECT id, total FROM orders WHERE customer_id = ${i + 1}; SELECT name FROM customers WHERE id = ${i + 1}; INSERT INTO audit_log (note) VALUES ('w${i}');`).join('\n');
    await psqlOk(project.connection_string, workload);
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('reports the query that lost its index as a regression, with the plan change as the reason; nothing written survives', async () => {
    const migrated = await branch('migrated');
    await psqlOk(migrated.connection_string, 'DROP INDEX orders_customer_idx');
    const before = [await psqlOk(project.connection_string, 'SELECT count(*) FROM audit_log'), await psqlOk(migrated.connection_string, 'SELECT count(*) FROM audit_log')];

    const res = await replay({ source_endpoint_id: project.endpoint_id, target_endpoint_id: migrated.compute_id, limit: 10 });
    expect(res.status).toBe(200);
    const { queries, summary } = res.body;
    expect(summary.total).toBe(queries.length);
    expect(summary.regressions + summary.improvements + summary.stable + summary.skipped).toBe(summary.total);
    const orders = queries.find((q: any) => /FROM orders WHERE customer_id = \$1/.test(q.query));
    expect(orders).toMatchObject({ status: 'regression', plan_changed: true });
    expect(orders.reason).toMatch(/Seq Scan on orders replaced .*orders_customer_idx/);
    expect(orders.target_buffers).toBeGreaterThan(orders.source_buffers * 2);
    // The means are rounded to µs, the ratio is of the unrounded means.
    expect(Math.abs(orders.ratio / (orders.target_mean_ms / orders.source_mean_ms) - 1)).toBeLessThan(0.03);
    const customers = queries.find((q: any) => /FROM customers WHERE id = \$1/.test(q.query));
    expect(customers.status).toBe('stable');
    const insert = queries.find((q: any) => /INSERT INTO audit_log/.test(q.query));
    expect(insert).toBeDefined();
    expect(insert.status).not.toBe('skipped');
    expect(queries.filter((q: any) => q.status === 'regression').map((q: any) => q.query)).toEqual([orders.query]);
    // Every run was rolled back.
    expect([await psqlOk(project.connection_string, 'SELECT count(*) FROM audit_log'), await psqlOk(migrated.connection_string, 'SELECT count(*) FROM audit_log')]).toEqual(before);
  });

  it('finds no regression on an unchanged branch, run after run', async () => {
    const same = await branch('unchanged');
    for (let run = 0; run < 3; run++) {
      const res = await replay({ source_endpoint_id: project.endpoint_id, target_endpoint_id: same.compute_id, limit: 10, repetitions: 3 });
      expect(res.status).toBe(200);
      expect(res.body.summary.regressions).toBe(0);
      if (res.body.summary.stable < 3) console.log(JSON.stringify(res.body, null, 1));
      expect(res.body.summary.stable).toBeGreaterThanOrEqual(3);
    }
  });

  it('skips what cannot be replayed with a reason, and refuses endpoints of another project', async () => {
    await psqlOk(project.connection_string, 'CREATE TABLE scratch (id int); DROP TABLE scratch');
    await psqlOk(project.connection_string, 'VACUUM customers');
    const res = await replay({ source_endpoint_id: project.endpoint_id, target_endpoint_id: project.endpoint_id, limit: 50, repetitions: 1 });
    expect(res.status).toBe(200);
    const skipped = res.body.queries.filter((q: any) => q.status === 'skipped');
    expect(skipped.length).toBeGreaterThan(0);
    for (const q of skipped) expect(q.reason).toMatch(/\S/);
    expect(skipped.map((q: any) => q.query).join('\n')).toMatch(/VACUUM|CREATE TABLE|DROP TABLE/);

    const other = await t.request('POST', '/v1/projects', { body: { name: 'replay-other' } });
    expect(other.status).toBe(201);
    expect((await replay({ source_endpoint_id: project.endpoint_id, target_endpoint_id: other.body.endpoint_id })).status).toBe(404);
    expect((await replay({ source_endpoint_id: project.endpoint_id, target_endpoint_id: project.endpoint_id, limit: 0 })).status).toBe(422);
    expect((await replay({ source_endpoint_id: 'ep-x"; DROP TABLE orders; --', target_endpoint_id: project.endpoint_id })).status).toBe(422);
  });
});
