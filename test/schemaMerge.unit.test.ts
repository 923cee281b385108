import { classifyStatement, planMerge, typeChangeEffect, type ClassifiedStatement } from '../src/domain/schemaMerge';
import { statementTrees } from '../src/domain/sql';

async function classify(sql: string, ctx = {}): Promise<ClassifiedStatement[]> {
  return (await statementTrees(sql)).map((s) => classifyStatement(s.text, s.node, ctx));
}

describe('classifyStatement', () => {
  it('names what each statement touches', async () => {
    const out = await classify(`
      alter table "public"."users" add column "avatar" text;
      create index users_email_idx on public.users using btree (email);
      create table "public"."audit" (id bigint generated always as identity primary key, note text);
      alter table "public"."users" alter column "status" set default 'active'::text;
      alter type "public"."mood" add value 'happy';
      create or replace view "public"."v_orders" as select 1;
      comment on table "public"."orders" is 'x';
      grant select on table "public"."users" to "reader";
      CREATE OR REPLACE FUNCTION public.f(x integer) RETURNS integer LANGUAGE sql AS $$select x+2$$;
      create trigger trg after insert on public.users for each row execute function public.tf();
      drop function public.f(integer);
    `);
    expect(out.map((s) => s.objects.map((o) => o.key))).toEqual([
      ['column public.users.avatar'],
      ['index public.users_email_idx'],
      ['relation public.audit'],
      ['column public.users.status'],
      ['type public.mood'],
      ['relation public.v_orders'],
      ['comment on relation public.orders'],
      ['privileges on relation public.users'],
      ['function public.f(int4)'],
      ['trigger public.users.trg'],
      ['function public.f(int4)'],
    ]);
    expect(out.slice(0, 10).every((s) => !s.destructive)).toBe(true);
  });

  it('marks drops of data and lossy type changes destructive, and says why', async () => {
    const [dropCol, dropTable, narrow, widen, dropIndex, dropView] = await classify(
      `alter table public.orders drop column total;
       drop table "public"."t";
       alter table public.users alter column email type varchar(50) using email::varchar(50);
       alter table public.users alter column name type varchar(200);
       drop index if exists "public"."i";
       drop view public.v;`,
      { columnTypes: { 'public.users.email': 'text', 'public.users.name': 'character varying(100)' } },
    );
    expect(dropCol).toMatchObject({ destructive: true, hazards: ['drop'] });
    expect(dropCol.reasons[0]).toMatch(/drops column public\.orders\.total/);
    expect(dropTable.destructive).toBe(true);
    expect(narrow.destructive).toBe(true);
    expect(narrow.hazards).toEqual(expect.arrayContaining(['data_loss', 'table_rewrite']));
    expect(narrow.reasons.join(' ')).toMatch(/from text to varchar\(50\)/);
    expect(widen).toMatchObject({ destructive: false, hazards: [] });
    expect(dropIndex).toMatchObject({ destructive: false, hazards: ['drop'] });
    expect(dropView.destructive).toBe(false);
  });

  it('flags index builds and scans on big tables only', async () => {
    const sql = `create index i on public.big (x); create index j on public.small (x); alter table public.big alter column x set not null; alter table public.big add column id uuid default gen_random_uuid()`;
    const [bigIndex, smallIndex, notNull, volatileDefault] = await classify(sql, { tableBytes: { 'public.big': 100 * 1048576, 'public.small': 8192 } });
    expect(bigIndex.hazards).toEqual(['index_build']);
    expect(bigIndex.reasons[0]).toMatch(/100\.0 MiB/);
    expect(smallIndex.hazards).toEqual([]);
    expect(notNull.hazards).toEqual(['long_lock']);
    expect(volatileDefault.hazards).toEqual(['table_rewrite']);
  });
});

describe('typeChangeEffect', () => {
  it.each([
    ['integer', 'int8', true, true],
    ['bigint', 'int4', false, true],
    ['character varying(10)', 'varchar(20)', true, false],
    ['character varying(20)', 'varchar(10)', false, true],
    ['text', 'varchar(50)', false, true],
    ['varchar(5)', 'text', true, false],
    ['numeric(10,2)', 'numeric(12,2)', true, false],
    ['numeric(10,2)', 'numeric(10,3)', false, true],
    [undefined, 'int8', false, true],
  ])('%s → %s: lossless %s, rewrite %s', (from, to, lossless, rewrite) => {
    expect(typeChangeEffect(from as string | undefined, to as string)).toEqual({ lossless, rewrite });
  });
});

describe('planMerge', () => {
  it("applies the branch's changes, leaves out the undoing of the parent's, and names objects both changed", async () => {
    const toBranch = await classify(`
      alter table public.users add column avatar text;
      alter table public.users drop column nickname;
      drop table public.parent_only;
      alter table public.orders alter column total set default 0;
    `);
    const branchChanges = await classify(`alter table public.users add column avatar text; alter table public.orders alter column total set default 0;`);
    const parentChanges = await classify(`alter table public.users add column nickname text; create table public.parent_only (id int); alter table public.orders alter column total set default 1;`);
    const plan = planMerge({ toBranch, branchChanges, parentChanges });
    expect(plan.apply.map((s) => s.sql)).toEqual(['alter table public.users add column avatar text']);
    expect(plan.keptParentChanges.map((s) => s.sql)).toEqual(['alter table public.users drop column nickname', 'drop table public.parent_only']);
    expect(plan.conflicts).toEqual([
      { object: 'column public.orders.total', branch: ['alter table public.orders alter column total set default 0'], parent: ['alter table public.orders alter column total set default 1'] },
    ]);
  });

  it('treats a dropped or created relation as touching all its parts', async () => {
    const toBranch = await classify(`alter table public.users add column avatar text`);
    const plan = planMerge({ toBranch, branchChanges: toBranch, parentChanges: await classify('drop table public.users') });
    expect(plan.conflicts.map((c) => c.object)).toEqual(['column public.users.avatar']);
    expect(plan.apply).toEqual([]);
  });

  it('with no parent changes applies everything, destructive listed apart', async () => {
    const toBranch = await classify(`alter table public.users add column avatar text; alter table public.orders drop column total`);
    const plan = planMerge({ toBranch, branchChanges: toBranch, parentChanges: [] });
    expect(plan.apply).toHaveLength(2);
    expect(plan.destructive.map((s) => s.sql)).toEqual(['alter table public.orders drop column total']);
    expect(plan.conflicts).toEqual([]);
  });
});
