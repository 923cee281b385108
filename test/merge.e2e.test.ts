/**
 * Schema merge of a branch into its parent, through the API on a real stack: the parent's schema
 * at the fork point restored from its history, three diffs, hazards, conflicts, and the DDL run
 * on the parent in one transaction. Schemas are compared with pg_dump --schema-only of both.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { startTestStack, TestStack } from './support/stack';
import { psqlOk } from './support/clients';
import { clientBin } from './support/pg';
import { branchDirNames, postgresUnder } from './support/host';
import { SYSTEM_ROLE } from '../src/domain/roles';

jest.setTimeout(300_000);

const BASE_SCHEMA = `
  CREATE TYPE mood AS ENUM ('sad', 'ok');
  CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, created_at timestamptz DEFAULT now(), status text DEFAULT 'new', m mood DEFAULT 'ok');
  CREATE TABLE orders (id serial PRIMARY KEY, user_id bigint REFERENCES users (id), total numeric(10, 2));
  CREATE VIEW v_users AS SELECT id, email FROM users;
  CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql AS 'select x + 1';
  CREATE FUNCTION tf() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
  CREATE TRIGGER trg BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION tf();
  COMMENT ON TABLE users IS 'people';
  INSERT INTO users (email) VALUES ('a@example.com');
  INSERT INTO orders (user_id, total) VALUES (1, 9.99);
`;

describe('branch merge', () => {
  let t: TestStack;
  let project: any;
  const path = (p: string) => `/v1/projects/${project.id}${p}`;
  const merge = (branchId: string, body: unknown) => t.request('POST', path(`/branches/${branchId}/merge`), { body });

  async function branch(name: string) {
    const res = await t.request('POST', path('/branches'), { body: { name } });
    expect(res.status).toBe(201);
    return res.body;
  }

  /** pg_dump --schema-only of an endpoint's database, over its private socket (18's pg_dump has no TLS). */
  async function schemaOf(endpointId: string): Promise<string> {
    const ep = (await t.request('GET', path(`/endpoints/${endpointId}`))).body;
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        clientBin('pg_dump', 18),
        ['--schema-only', '--no-owner', '-h', t.stack.engine.layout.socketDir(endpointId), '-p', String(ep.pg_port), '-U', SYSTEM_ROLE, '-d', 'postgres'],
        { encoding: 'utf8' },
        (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout)),
      ),
    );
    // \restrict carries a random key per dump; the rest is the schema.
    return out
      .split('\n')
      .filter((l) => !/^\\(un)?restrict /.test(l))
      .join('\n');
  }

  beforeAll(async () => {
    t = await startTestStack();
    const res = await t.request('POST', '/v1/projects', { body: { name: 'merge', pg_version: 18 } });
    expect(res.status).toBe(201);
    project = res.body;
    await psqlOk(project.connection_string, BASE_SCHEMA);
    // The parent's history needs a base from before its branches: the fork point is read from it.
    const backup = await t.request('POST', path('/backups'), { body: { name: 'before-branches' } });
    expect(backup.status).toBe(201);
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('previews, then applies, a branch’s changes: the parent’s schema then equals the branch’s', async () => {
    const feat = await branch('feat');
    await psqlOk(
      feat.connection_string,
      `ALTER TABLE users ADD COLUMN avatar text;
       CREATE INDEX users_email_idx ON users (email);
       CREATE TABLE audit (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text);
       ALTER TABLE users ALTER COLUMN status SET DEFAULT 'active';
       ALTER TYPE mood ADD VALUE 'happy';
       CREATE VIEW v_orders AS SELECT id, total FROM orders;
       COMMENT ON TABLE orders IS 'purchases';
       CREATE OR REPLACE FUNCTION f(x int) RETURNS int LANGUAGE sql AS 'select x + 2';`,
    );
    const parentBefore = await schemaOf(project.endpoint_id);

    const dry = await merge(feat.id, { dry_run: true });
    expect(dry.status).toBe(200);
    expect(dry.body).toMatchObject({ dry_run: true, applied: [], withheld: [], destructive: [], kept_parent_changes: [] });
    expect(dry.body.changes).toBe(dry.body.statements.length);
    const sqlText: string = dry.body.sql;
    expect(sqlText).toMatch(/add column "avatar" text/i);
    expect(sqlText).toMatch(/CREATE INDEX users_email_idx/);
    expect(sqlText).toMatch(/create table "public"."audit"/i);
    expect(sqlText).toMatch(/set default 'active'/i);
    // An added enum value is an ADD VALUE, not a drop-and-recreate of the type and its views.
    expect(sqlText).toMatch(/ALTER TYPE "public"."mood" ADD VALUE 'happy' AFTER 'ok'/);
    expect(sqlText).not.toMatch(/old_version_to_be_dropped|drop view/i);
    expect(sqlText).toMatch(/create (or replace )?view "public"."v_orders"/i);
    expect(sqlText).toMatch(/COMMENT ON TABLE "?public"?\."?orders"? IS 'purchases'/);
    expect(sqlText).toMatch(/select x \+ 2/);
    expect(dry.body.statements.every((s: any) => !s.destructive)).toBe(true);
    expect(dry.body.statements.find((s: any) => /avatar/.test(s.sql)).objects).toEqual(['column public.users.avatar']);
    // A dry run changes nothing.
    expect(await schemaOf(project.endpoint_id)).toBe(parentBefore);

    const applied = await merge(feat.id, {});
    expect(applied.status).toBe(200);
    expect(applied.body.dry_run).toBe(false);
    expect(applied.body.applied).toEqual(applied.body.statements.map((s: any) => s.sql));
    expect(await schemaOf(project.endpoint_id)).toBe(await schemaOf(feat.compute_id));
    // The parent's rows are untouched, the new default is in force.
    expect(await psqlOk(project.connection_string, "WITH i AS (INSERT INTO users (email) VALUES ('b@example.com') RETURNING status, m) SELECT * FROM i")).toBe('active|ok');
    expect(await psqlOk(project.connection_string, 'SELECT count(*) FROM orders')).toBe('1');

    // A second merge has nothing left to do.
    const again = await merge(feat.id, { dry_run: true });
    expect(again.body).toMatchObject({ changes: 0, sql: '' });
  });

  it('withholds destructive changes unless allow_destructive, and lists them apart', async () => {
    const b = await branch('drops');
    await psqlOk(b.connection_string, 'DROP VIEW v_orders; ALTER TABLE orders DROP COLUMN total; CREATE TABLE extra (id int); DROP VIEW v_users; ALTER TABLE users ALTER COLUMN email TYPE varchar(50); CREATE VIEW v_users AS SELECT id, email FROM users');
    const res = await merge(b.id, {});
    expect(res.status).toBe(200);
    expect(res.body.withheld).toHaveLength(2);
    expect(res.body.withheld.join('\n')).toMatch(/drop column "total"/i);
    expect(res.body.withheld.join('\n')).toMatch(/email.*varchar\(50\)|character varying\(50\)/i);
    expect(res.body.destructive).toEqual(res.body.withheld);
    const drop = res.body.statements.find((s: any) => /drop column/i.test(s.sql));
    expect(drop).toMatchObject({ destructive: true, hazards: ['drop'] });
    expect(drop.reasons[0]).toMatch(/drops column public\.orders\.total/);
    const narrow = res.body.statements.find((s: any) => /alter column "?email"? (set data )?type/i.test(s.sql));
    expect(narrow.hazards).toEqual(expect.arrayContaining(['data_loss', 'table_rewrite']));
    expect(res.body.applied.join('\n')).toMatch(/create table "public"."extra"/i);
    // The column and its values are still on the parent.
    expect(await psqlOk(project.connection_string, 'SELECT total FROM orders')).toBe('9.99');

    const forced = await merge(b.id, { allow_destructive: true });
    expect(forced.status).toBe(200);
    expect(forced.body.withheld).toEqual([]);
    expect(forced.body.applied.join('\n')).toMatch(/drop column "total"/i);
    expect(await schemaOf(project.endpoint_id)).toBe(await schemaOf(b.compute_id));
  });

  it("keeps the parent's own changes since the fork, and refuses with 409 when both changed the same object", async () => {
    const b = await branch('concurrent');
    await psqlOk(b.connection_string, "ALTER TABLE users ADD COLUMN bio text; ALTER TABLE users ALTER COLUMN status SET DEFAULT 'from-branch'");
    await psqlOk(project.connection_string, "CREATE TABLE parent_only (id int); ALTER TABLE users ALTER COLUMN status SET DEFAULT 'from-parent'");
    const parentBefore = await schemaOf(project.endpoint_id);

    const res = await merge(b.id, { dry_run: true });
    expect(res.status).toBe(409);
    expect(res.body.error.details.failure_type).toBe('MergeConflict');
    expect(res.body.error.message).toMatch(/column public\.users\.status/);
    const conflicts = res.body.error.details.failure.conflicts;
    expect(conflicts).toEqual([
      { object: 'column public.users.status', branch: [expect.stringMatching(/from-branch/)], parent: [expect.stringMatching(/from-parent/)] },
    ]);
    expect((await merge(b.id, {})).status).toBe(409);
    expect(await schemaOf(project.endpoint_id)).toBe(parentBefore);

    // Once the branch agrees on the contested default, the rest merges and parent_only stays.
    await psqlOk(b.connection_string, "ALTER TABLE users ALTER COLUMN status SET DEFAULT 'from-parent'");
    const ok = await merge(b.id, {});
    expect(ok.status).toBe(200);
    expect(ok.body.applied).toEqual([expect.stringMatching(/add column "bio" text/i)]);
    expect(ok.body.kept_parent_changes.join('\n')).toMatch(/drop table "public"."parent_only"/i);
    expect(await psqlOk(project.connection_string, "SELECT count(*) FROM pg_tables WHERE tablename = 'parent_only'")).toBe('1');
    expect(await psqlOk(project.connection_string, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'bio'")).toBe('1');
  });

  describe('with a fault injected at a step', () => {
    let b: any;
    const setFaults = (...specs: string[]) => {
      const f = t.stack.config.faultInjection;
      f.splice(0, f.length, ...specs);
    };
    beforeAll(async () => {
      b = await branch('faults');
      await psqlOk(b.connection_string, 'CREATE TABLE from_faulty (id int)');
    });
    afterEach(() => setFaults());

    it.each(['provisionRestoredCompute:after', 'planSchemaMerge', 'applySchemaMerge'])('%s: the merge fails, the parent is unchanged, the scratch compute is gone', async (fault) => {
      const before = await schemaOf(project.endpoint_id);
      setFaults(fault);
      const res = await merge(b.id, {});
      expect(res.status).toBe(500);
      expect(res.body.error.message).toBe(`injected fault in activity ${fault.replace(/:.*$/, '')}`);
      setFaults();
      expect(await schemaOf(project.endpoint_id)).toBe(before);
      const layout = t.stack.engine.layout;
      expect(branchDirNames(layout).filter((n) => n.startsWith('br-mb'))).toEqual([]);
      expect(fs.readdirSync(layout.endpointsDir).filter((n) => n.startsWith('ep-mb'))).toEqual([]);
      expect(postgresUnder(layout.branchesDir).filter((l) => l.includes('br-mb'))).toEqual([]);
      // Nothing is stuck: the same merge runs now.
      expect((await merge(b.id, { dry_run: true })).body.sql).toMatch(/from_faulty/);
    });
  });

  it('refuses what cannot be merged, and leaves no scratch compute behind', async () => {
    const root = await merge(project.branch_id, { dry_run: true });
    expect(root.status).toBe(422);
    expect(root.body.error.message).toMatch(/no parent/);
    const b = await branch('bad-input');
    for (const body of [{ dry_run: 'yes' }, { allow_destructive: 1 }, { database: 'x\u0000y' }, { unknown: true }]) {
      expect((await merge(b.id, body)).status).toBe(422);
    }
    expect((await merge(b.id, { database: 'nope' })).status).toBe(404);
    const layout = t.stack.engine.layout;
    expect(branchDirNames(layout).filter((n) => n.startsWith('br-mb'))).toEqual([]);
    expect(postgresUnder(layout.branchesDir).filter((l) => l.includes('br-mb'))).toEqual([]);
  });
});
