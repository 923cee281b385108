import { startTestStack, TestStack } from './support/stack';
import { consoleOf, HOSTILE } from './support/console';
import { checkColumnType, checkDefault } from '../src/domain/pgsql/tables';

describe('tables and columns', () => {
  let t: TestStack;
  let c: ReturnType<typeof consoleOf>;
  const columns = async (table: string) =>
    c.sql(`SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS def
           FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
           WHERE a.attrelid = '${table.replace(/'/g, "''")}'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`);

  beforeAll(async () => {
    t = await startTestStack();
    const project = (await t.request('POST', '/v1/projects', { body: { name: 'tables' } })).body;
    c = consoleOf(t, project);
    await c.sql('CREATE TABLE canary (id int)');
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('creates a table as the reference shows it, with a bare-word default as a string', async () => {
    const r = await c.req('POST', '/tables', {
      name: 'orders',
      columns: [
        { name: 'id', type: 'serial', primary_key: true },
        { name: 'total', type: 'numeric', nullable: false },
        { name: 'status', type: 'text', default: 'pending' },
        { name: 'placed_at', type: 'timestamptz', default: 'now()' },
        { name: 'ref', type: 'uuid', default: 'gen_random_uuid()' },
      ],
    });
    expect(r.status).toBe(201);
    expect(r.body).toEqual({ table: 'orders', schema: 'public', columns: ['id', 'total', 'status', 'placed_at', 'ref'] });
    expect(await columns('orders')).toEqual([
      { name: 'id', type: 'integer', not_null: true, def: "nextval('orders_id_seq'::regclass)" },
      { name: 'total', type: 'numeric', not_null: true, def: null },
      { name: 'status', type: 'text', not_null: false, def: "'pending'::text" },
      { name: 'placed_at', type: 'timestamp with time zone', not_null: false, def: 'now()' },
      { name: 'ref', type: 'uuid', not_null: false, def: 'gen_random_uuid()' },
    ]);
    expect((await c.req('POST', '/tables', { name: 'orders', columns: [{ name: 'x', type: 'int' }] })).status).toBe(409);
  });

  it('adds, renames, alters and drops columns; renames and drops tables', async () => {
    const add = await c.req('POST', '/tables/orders/columns', { name: 'note', type: 'varchar(20)', nullable: true, default: "'n/a'" });
    expect(add.status).toBe(201);
    expect(add.body).toEqual({ column: 'note', type: 'varchar(20)' });
    expect((await c.req('POST', '/tables/orders/columns', { name: 'note', type: 'text' })).status).toBe(409);
    const alter = await c.req('PATCH', '/tables/orders/columns/total', { type: 'numeric(10,2)', nullable: false, default: '0' });
    expect(alter.status).toBe(200);
    expect(alter.body).toEqual({ column: 'total', type: 'numeric(10,2)', nullable: false, default: '0' });
    const dropDefault = await c.req('PATCH', '/tables/orders/columns/total', { default: null, nullable: true });
    expect(dropDefault.body).toEqual({ column: 'total', type: 'numeric(10,2)', nullable: true, default: null });
    // Rows that cannot convert: the database's refusal, nothing changed.
    await c.sql("INSERT INTO orders (total, note) VALUES (1.5, 'abc')");
    const bad = await c.req('PATCH', '/tables/orders/columns/note', { type: 'integer' });
    expect(bad.status).toBe(422);
    expect(bad.body.error.details.sqlstate).toBe('42804');
    expect((await columns('orders')).find((x: any) => x.name === 'note').type).toBe('character varying(20)');
    expect((await c.req('POST', '/tables/orders/columns/rename', { old_name: 'total', new_name: 'total_amount' })).body).toEqual({ old_name: 'total', new_name: 'total_amount' });
    expect((await c.req('POST', '/tables/orders/columns/rename', { old_name: 'total', new_name: 'x' })).status).toBe(404);
    expect((await c.req('DELETE', '/tables/orders/columns/note')).status).toBe(204);
    expect((await c.req('DELETE', '/tables/orders/columns/note')).status).toBe(404);
    expect((await c.req('POST', '/tables/orders/rename', { new_name: 'customer_orders' })).body).toEqual({ old_name: 'orders', new_name: 'customer_orders' });
    await c.sql('CREATE VIEW big_orders AS SELECT * FROM customer_orders WHERE total_amount > 100');
    const dep = await c.req('DELETE', '/tables/customer_orders');
    expect(dep.status).toBe(409);
    expect(dep.body.error).toMatchObject({ code: 'dependent_objects_still_exist', details: { detail: expect.stringContaining('view big_orders depends on table customer_orders') } });
    await c.sql('DROP VIEW big_orders');
    expect((await c.req('DELETE', '/tables/public.customer_orders')).status).toBe(204);
    expect((await c.req('DELETE', '/tables/customer_orders')).status).toBe(404);
  });

  it('injection in names, types and defaults: created literally or refused with 422, nothing else runs', async () => {
    const made = await c.req('POST', '/tables', { name: HOSTILE, columns: [{ name: HOSTILE, type: 'int', primary_key: true }] });
    expect(made.status).toBe(201);
    expect(await columns(`"${HOSTILE.replace(/"/g, '""')}"`)).toEqual([{ name: HOSTILE, type: 'integer', not_null: true, def: null }]);
    const attempts = [
      { name: 't1', columns: [{ name: 'a', type: 'int); DROP TABLE canary; --' }] },
      { name: 't2', columns: [{ name: 'a', type: 'int DEFAULT 1' }] },
      { name: 't3', columns: [{ name: 'a', type: 'int', default: "1; DROP TABLE canary" }] },
      { name: 't4', columns: [{ name: 'a', type: 'int', default: '(SELECT count(*) FROM canary)' }] },
      { name: 't5', columns: [{ name: 'a', type: 'text', default: "pg_read_file('/etc/passwd')" }] },
      { name: 't6', columns: [{ name: 'a', type: 'bigint', default: "nextval('canary_id_seq')" }] },
      { name: 't7', columns: [{ name: 'a', type: 'text', default: "'x' || current_setting('is_superuser')" }] },
    ];
    for (const body of attempts) {
      const r = await c.req('POST', '/tables', body);
      expect({ body, status: r.status }).toEqual({ body, status: 422 });
    }
    expect((await c.req('PATCH', `/tables/${encodeURIComponent(HOSTILE)}/columns/${encodeURIComponent(HOSTILE)}`, { default: "0); DROP TABLE canary; --" })).status).toBe(422);
    expect((await c.req('POST', `/tables/${encodeURIComponent(HOSTILE)}/rename`, { new_name: `${HOSTILE}2` })).status).toBe(200);
    expect(await c.sql("SELECT to_regclass('canary') IS NOT NULL AS here, (SELECT count(*) FROM pg_class WHERE relname ~ '^t[1-7]$') AS strays")).toEqual([{ here: true, strays: '0' }]);
  });
});

describe('column types and defaults (the parser decides)', () => {
  it.each(['int', 'integer[]', 'numeric(10,2)', 'varchar(20)', 'timestamp with time zone', 'double precision', 'public.my_enum', 'serial', 'character varying'])('%s is a type', async (type) => {
    expect(await checkColumnType(type)).toEqual({ ok: true, sql: type });
  });
  it.each(['int); DROP TABLE x; --', 'int NOT NULL', 'int DEFAULT 1', 'text COLLATE "C"', '', 'int, b int', 'int /* x */'])('%s is not', async (type) => {
    expect((await checkColumnType(type)).ok).toBe(false);
  });
  it.each([
    ['0', '0'],
    ["'x'", "'x'"],
    ['pending', "'pending'"],
    ['now()', 'now()'],
    ['CURRENT_TIMESTAMP', 'CURRENT_TIMESTAMP'],
    ["'{}'::jsonb", "'{}'::jsonb"],
    ['-1.5', '-1.5'],
    ["nextval('orders_id_seq')", "nextval('orders_id_seq')"],
    ['true', 'true'],
  ])('default %s → %s', async (expr, sql) => {
    expect(await checkDefault(expr, 'orders')).toEqual({ ok: true, sql });
  });
  it.each(["nextval('other_seq')", '(SELECT 1)', 'random() + (SELECT 1)', "pg_read_file('x')", 'a.b', "current_setting('x')", 'count(*)', '1; SELECT 2'])('default %s is refused', async (expr) => {
    expect((await checkDefault(expr, 'orders')).ok).toBe(false);
  });
});
