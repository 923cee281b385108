/**
 * What a schema merge does, decided from parse trees (libpg-query's JSON) of the DDL a diff
 * engine produced: which objects each statement touches, how it can hurt (drops, data loss, table
 * rewrites, long locks, index builds), and — comparing with both sides' changes since the fork —
 * which statements are the branch's to apply, which undo the parent's own work and are left out,
 * and which objects both sides changed (conflicts). Pure: no database, no parser loading.
 */

/** An object a statement touches: `column public.users.email`, `relation public.users`, … */
export interface TouchedObject {
  key: string;
  /** The relation it belongs to (`public.users`) for columns, constraints, indexes, triggers. */
  table?: string;
  /** The statement makes, drops or renames the object itself (not one of its parts). */
  whole: boolean;
}

export type Hazard = 'drop' | 'data_loss' | 'table_rewrite' | 'long_lock' | 'index_build';

export interface ClassifiedStatement {
  sql: string;
  /** The parse node's name: AlterTableStmt, CreateStmt, DropStmt, … */
  kind: string;
  objects: TouchedObject[];
  hazards: Hazard[];
  /** Can lose data: applied only when the caller allows destructive changes. */
  destructive: boolean;
  /** Why each hazard was raised, for people. */
  reasons: string[];
}

export interface ClassifyContext {
  /** The target's current column types, `schema.table.column` → format_type() text. */
  columnTypes?: Record<string, string>;
  /** The target's relation sizes in bytes, `schema.table` → pg_total_relation_size. */
  tableBytes?: Record<string, number>;
  /** A table at least this big makes index builds and full scans hazards (default 32 MiB). */
  bigTableBytes?: number;
}

export const DEFAULT_BIG_TABLE_BYTES = 32 * 1024 * 1024;

type Node = Record<string, any>;

const str = (n: Node | undefined): string => n?.String?.sval ?? '';
const qname = (names: Node[] | undefined): string => {
  const parts = (names ?? []).map(str);
  return parts.length === 1 ? `public.${parts[0]}` : parts.join('.');
};
const rangeVar = (rv: Node | undefined): string => `${rv?.schemaname ?? 'public'}.${rv?.relname ?? '?'}`;
const typeName = (t: Node | undefined): string => {
  const names = (t?.names ?? []).map(str).filter((s: string) => s !== 'pg_catalog');
  const mods = (t?.typmods ?? []).map((m: Node) => m?.A_Const?.ival?.ival ?? 0);
  return `${names.join('.')}${mods.length ? `(${mods.join(',')})` : ''}${t?.arrayBounds ? '[]' : ''}`;
};
const funcKey = (name: Node[] | undefined, args: string[]): string => `${qname(name)}(${args.join(',')})`;

const RELATION_KINDS: Record<string, string> = {
  OBJECT_TABLE: 'relation',
  OBJECT_VIEW: 'relation',
  OBJECT_MATVIEW: 'relation',
  OBJECT_SEQUENCE: 'relation',
  OBJECT_FOREIGN_TABLE: 'relation',
  OBJECT_INDEX: 'index',
  OBJECT_TYPE: 'type',
  OBJECT_DOMAIN: 'type',
  OBJECT_SCHEMA: 'schema',
  OBJECT_EXTENSION: 'extension',
  OBJECT_FUNCTION: 'function',
  OBJECT_PROCEDURE: 'function',
  OBJECT_ROUTINE: 'function',
  OBJECT_AGGREGATE: 'function',
  OBJECT_TRIGGER: 'trigger',
  OBJECT_POLICY: 'policy',
  OBJECT_COLUMN: 'column',
};

/** Dropping one of these drops rows or values: a destructive change. */
const DATA_BEARING_DROPS = new Set(['OBJECT_TABLE', 'OBJECT_SCHEMA', 'OBJECT_SEQUENCE', 'OBJECT_TYPE', 'OBJECT_DOMAIN', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE', 'OBJECT_EXTENSION']);

/** Functions whose value differs per row: a column added with one as default rewrites the table. */
const VOLATILE_DEFAULTS = /^(random|gen_random_uuid|uuid_generate_v\d|clock_timestamp|timeofday|nextval)$/;

/** The object a DROP or COMMENT names, as a key. */
function objectKey(objtype: string, obj: Node): TouchedObject {
  const kind = RELATION_KINDS[objtype] ?? objtype.replace(/^OBJECT_/, '').toLowerCase();
  if (obj?.ObjectWithArgs) {
    const args = (obj.ObjectWithArgs.objargs ?? []).map((t: Node) => typeName(t.TypeName));
    return { key: `function ${funcKey(obj.ObjectWithArgs.objname, args)}`, whole: true };
  }
  if (obj?.TypeName) return { key: `type ${qname(obj.TypeName.names)}`, whole: true };
  if (obj?.String) return { key: `${kind} ${str(obj)}`, whole: true };
  const items: string[] = (obj?.List?.items ?? []).map(str);
  if (kind === 'column' || kind === 'trigger' || kind === 'policy') {
    // [schema.]table.name (columns) or table's object: the last part names the part.
    const part = items[items.length - 1];
    const rel = items.length >= 3 ? `${items[0]}.${items[1]}` : `public.${items[0]}`;
    return { key: `${kind} ${rel}.${part}`, table: rel, whole: kind !== 'column' };
  }
  const name = items.length === 1 ? `public.${items[0]}` : items.join('.');
  return { key: `${kind} ${name}`, ...(kind === 'relation' ? { table: name } : {}), whole: true };
}

/** Widenings that keep every value, and whether they rewrite the table. */
export function typeChangeEffect(from: string | undefined, to: string): { lossless: boolean; rewrite: boolean } {
  const norm = (t: string) =>
    t
      .toLowerCase()
      .replace(/\s+/g, ' ')
      .replace(/^character varying/, 'varchar')
      .replace(/^character\b/, 'bpchar')
      .replace(/^integer$/, 'int4')
      .replace(/^bigint$/, 'int8')
      .replace(/^smallint$/, 'int2')
      .replace(/^double precision$/, 'float8')
      .replace(/^real$/, 'float4')
      .replace(/^timestamp with time zone$/, 'timestamptz')
      .replace(/^timestamp without time zone$/, 'timestamp')
      .trim();
  const a = from === undefined ? undefined : norm(from);
  const b = norm(to);
  const m = (t: string) => /^(\w+)(?:\((\d+)(?:,\s*(\d+))?\))?$/.exec(t);
  const ma = a ? m(a) : null;
  const mb = m(b);
  if (!ma || !mb) return { lossless: false, rewrite: true };
  const [, ta, na, sa] = ma;
  const [, tb, nb, sb] = mb;
  if (a === b) return { lossless: true, rewrite: false };
  const strings = ['varchar', 'text'];
  if (strings.includes(ta) && strings.includes(tb)) {
    // varchar(n) → varchar(m ≥ n), varchar → text, text → varchar: binary-coercible, no rewrite.
    if (tb === 'text' || nb === undefined) return { lossless: true, rewrite: false };
    if (ta === 'varchar' && na !== undefined && Number(nb) >= Number(na)) return { lossless: true, rewrite: false };
    // A length limit to check: every value is cast, the table rewritten.
    return { lossless: false, rewrite: true };
  }
  if (ta === 'bpchar' && strings.includes(tb) && (tb === 'text' || nb === undefined || (na !== undefined && Number(nb) >= Number(na)))) return { lossless: true, rewrite: true };
  if (ta === 'numeric' && tb === 'numeric') {
    if (nb === undefined) return { lossless: true, rewrite: false };
    if (na === undefined) return { lossless: false, rewrite: true };
    const [pa, qa, pb, qb] = [Number(na), Number(sa ?? 0), Number(nb), Number(sb ?? 0)];
    return { lossless: qb >= qa && pb - qb >= pa - qa, rewrite: qb !== qa || pb < pa };
  }
  const wider: Record<string, string[]> = {
    int2: ['int4', 'int8', 'numeric', 'text', 'float8'],
    int4: ['int8', 'numeric', 'text'],
    int8: ['numeric', 'text'],
    float4: ['float8', 'text'],
    timestamp: ['timestamptz'],
    date: ['timestamp', 'timestamptz', 'text'],
    uuid: ['text'],
  };
  if (wider[ta]?.includes(tb) && nb === undefined) return { lossless: true, rewrite: true };
  return { lossless: false, rewrite: true };
}

/** One statement of a merge, classified. `node` is its libpg-query parse tree (`stmts[i].stmt`). */
export function classifyStatement(sql: string, node: Node, ctx: ClassifyContext = {}): ClassifiedStatement {
  const kind = Object.keys(node ?? {})[0] ?? 'unknown';
  const body: Node = node?.[kind] ?? {};
  const objects: TouchedObject[] = [];
  const hazards = new Set<Hazard>();
  const reasons: string[] = [];
  let destructive = false;
  const big = ctx.bigTableBytes ?? DEFAULT_BIG_TABLE_BYTES;
  const sizeOf = (table: string) => ctx.tableBytes?.[table];
  const isBig = (table: string) => (sizeOf(table) ?? 0) >= big;
  const sizeText = (table: string) => {
    const b = sizeOf(table);
    return b === undefined ? 'size unknown' : `${(b / 1048576).toFixed(1)} MiB`;
  };

  switch (kind) {
    case 'CreateStmt':
    case 'CreateTableAsStmt':
    case 'ViewStmt':
    case 'CreateSeqStmt':
    case 'AlterSeqStmt': {
      const rel = rangeVar(body.relation ?? body.view ?? body.sequence ?? body.into?.rel);
      objects.push({ key: `relation ${rel}`, table: rel, whole: kind !== 'AlterSeqStmt' });
      break;
    }
    case 'IndexStmt': {
      const table = rangeVar(body.relation);
      const schema = body.relation?.schemaname ?? 'public';
      objects.push({ key: `index ${schema}.${body.idxname ?? '?'}`, table, whole: true });
      if (!body.concurrent && isBig(table)) {
        hazards.add('index_build');
        reasons.push(`builds an index on ${table} (${sizeText(table)}) while writes to it wait`);
      }
      break;
    }
    case 'AlterTableStmt': {
      const table = rangeVar(body.relation);
      for (const c of body.cmds ?? []) {
        const cmd: Node = c.AlterTableCmd ?? {};
        const col = cmd.name as string | undefined;
        switch (cmd.subtype) {
          case 'AT_AddColumn': {
            const def: Node = cmd.def?.ColumnDef ?? {};
            objects.push({ key: `column ${table}.${def.colname}`, table, whole: true });
            const volatileDefault = JSON.stringify(def.constraints ?? []).match(/"funcname":\[(?:\{"String":\{"sval":"pg_catalog"\}\},)?\{"String":\{"sval":"(\w+)"\}\}/);
            if (volatileDefault && VOLATILE_DEFAULTS.test(volatileDefault[1])) {
              hazards.add('table_rewrite');
              reasons.push(`adds ${def.colname} with a per-row default (${volatileDefault[1]}()): rewrites ${table} (${sizeText(table)})`);
            }
            break;
          }
          case 'AT_DropColumn':
            objects.push({ key: `column ${table}.${col}`, table, whole: true });
            hazards.add('drop');
            destructive = true;
            reasons.push(`drops column ${table}.${col} and its values`);
            break;
          case 'AT_AlterColumnType': {
            objects.push({ key: `column ${table}.${col}`, table, whole: false });
            const to = typeName(cmd.def?.ColumnDef?.typeName);
            const from = ctx.columnTypes?.[`${table}.${col}`];
            const effect = typeChangeEffect(from, to);
            if (!effect.lossless) {
              hazards.add('data_loss');
              destructive = true;
              reasons.push(`changes ${table}.${col} from ${from ?? 'its type'} to ${to}: values may not fit`);
            }
            if (effect.rewrite) {
              hazards.add('table_rewrite');
              hazards.add('long_lock');
              reasons.push(`rewrites ${table} (${sizeText(table)}) under an exclusive lock`);
            }
            break;
          }
          case 'AT_SetNotNull':
            objects.push({ key: `column ${table}.${col}`, table, whole: false });
            hazards.add('long_lock');
            reasons.push(`SET NOT NULL scans ${table} (${sizeText(table)}) under an exclusive lock`);
            break;
          case 'AT_AddConstraint': {
            const con: Node = cmd.def?.Constraint ?? {};
            objects.push({ key: `constraint ${table}.${con.conname ?? con.contype}`, table, whole: true });
            if (!con.skip_validation && ['CONSTR_CHECK', 'CONSTR_FOREIGN', 'CONSTR_PRIMARY', 'CONSTR_UNIQUE', 'CONSTR_EXCLUSION'].includes(con.contype)) {
              hazards.add('long_lock');
              reasons.push(`adding ${con.conname ?? 'a constraint'} checks every row of ${table} (${sizeText(table)}) under a lock`);
              if (['CONSTR_PRIMARY', 'CONSTR_UNIQUE', 'CONSTR_EXCLUSION'].includes(con.contype) && isBig(table)) hazards.add('index_build');
            }
            break;
          }
          case 'AT_DropConstraint':
            objects.push({ key: `constraint ${table}.${col}`, table, whole: true });
            hazards.add('drop');
            reasons.push(`drops constraint ${col} of ${table}`);
            break;
          case 'AT_ValidateConstraint':
            objects.push({ key: `constraint ${table}.${col}`, table, whole: false });
            break;
          default:
            // Defaults, NOT NULL dropped, statistics, storage, identity, ownership, …: a part.
            objects.push(col ? { key: `column ${table}.${col}`, table, whole: false } : { key: `relation ${table}`, table, whole: false });
        }
      }
      break;
    }
    case 'DropStmt': {
      for (const o of body.objects ?? []) objects.push(objectKey(body.removeType, o));
      hazards.add('drop');
      const names = objects.map((o) => o.key).join(', ');
      if (DATA_BEARING_DROPS.has(body.removeType) || body.behavior === 'DROP_CASCADE') {
        destructive = true;
        reasons.push(`drops ${names}${body.behavior === 'DROP_CASCADE' ? ' and what depends on it' : ' and the data it holds'}`);
      } else {
        reasons.push(`drops ${names}`);
      }
      break;
    }
    case 'RenameStmt': {
      const rel = body.relation ? rangeVar(body.relation) : undefined;
      if (body.renameType === 'OBJECT_COLUMN' && rel) objects.push({ key: `column ${rel}.${body.subname}`, table: rel, whole: true });
      else if (rel) objects.push({ key: `relation ${rel}`, table: rel, whole: true });
      else if (body.object) objects.push(objectKey(body.renameType, body.object));
      break;
    }
    case 'CreateFunctionStmt': {
      const args = (body.parameters ?? [])
        .map((p: Node) => p.FunctionParameter)
        .filter((p: Node) => !['FUNC_PARAM_OUT', 'FUNC_PARAM_TABLE'].includes(p.mode))
        .map((p: Node) => typeName(p.argType));
      objects.push({ key: `function ${funcKey(body.funcname, args)}`, whole: true });
      break;
    }
    case 'CreateTrigStmt': {
      const table = rangeVar(body.relation);
      objects.push({ key: `trigger ${table}.${body.trigname}`, table, whole: true });
      break;
    }
    case 'CreateEnumStmt':
    case 'CompositeTypeStmt':
    case 'CreateDomainStmt':
    case 'CreateRangeStmt':
      objects.push({ key: `type ${kind === 'CompositeTypeStmt' ? rangeVar(body.typevar) : qname(body.typeName ?? body.domainname)}`, whole: true });
      break;
    case 'AlterEnumStmt':
    case 'AlterDomainStmt':
      objects.push({ key: `type ${qname(body.typeName)}`, whole: false });
      break;
    case 'CreateSchemaStmt':
      objects.push({ key: `schema ${body.schemaname}`, whole: true });
      break;
    case 'CreateExtensionStmt':
    case 'AlterExtensionStmt':
      objects.push({ key: `extension ${body.extname}`, whole: kind === 'CreateExtensionStmt' });
      break;
    case 'CommentStmt': {
      const o = objectKey(body.objtype, body.object);
      objects.push({ ...o, key: `comment on ${o.key}`, whole: false });
      break;
    }
    case 'GrantStmt': {
      const kindName = RELATION_KINDS[body.objtype] ?? 'object';
      for (const o of body.objects ?? []) {
        const name = o.RangeVar ? rangeVar(o.RangeVar) : o.ObjectWithArgs ? funcKey(o.ObjectWithArgs.objname, (o.ObjectWithArgs.objargs ?? []).map((t: Node) => typeName(t.TypeName))) : str(o);
        objects.push({ key: `privileges on ${kindName} ${name}`, whole: false });
      }
      break;
    }
    case 'CreatePolicyStmt':
    case 'AlterPolicyStmt': {
      const table = rangeVar(body.table);
      objects.push({ key: `policy ${table}.${body.policy_name}`, table, whole: kind === 'CreatePolicyStmt' });
      break;
    }
    default:
      objects.push({ key: `statement ${kind}`, whole: false });
  }
  return { sql, kind, objects, hazards: [...hazards], destructive, reasons };
}

/** The diff engine's own flags, added to ours: either one calling a statement lossy makes it so. */
export function withEngineFlags(s: ClassifiedStatement, engine: { dataLoss: boolean; rewriteRisk: boolean }): ClassifiedStatement {
  const hazards = new Set(s.hazards);
  const reasons = [...s.reasons];
  let destructive = s.destructive;
  if (engine.dataLoss && !destructive) {
    destructive = true;
    hazards.add('data_loss');
    reasons.push('the diff engine marks it as losing data');
  }
  if (engine.rewriteRisk && !hazards.has('table_rewrite')) {
    hazards.add('table_rewrite');
    reasons.push('the diff engine marks it as possibly rewriting the table');
  }
  return { ...s, hazards: [...hazards], destructive, reasons };
}

/** Two touched objects are the same thing, or one makes/drops a relation the other is part of. */
function overlaps(a: TouchedObject, b: TouchedObject): boolean {
  if (a.key === b.key) return true;
  const rel = (o: TouchedObject) => (o.key.startsWith('relation ') ? o.key.slice('relation '.length) : undefined);
  if (a.whole && rel(a) && b.table === rel(a)) return true;
  if (b.whole && rel(b) && a.table === rel(b)) return true;
  return false;
}

export interface MergeConflict {
  object: string;
  /** The branch's statements (since the fork) on it. */
  branch: string[];
  /** The parent's statements (since the fork) on it. */
  parent: string[];
}

export interface MergePlan {
  /** What turns the parent into the branch for the objects the branch changed, in order. */
  apply: ClassifiedStatement[];
  /** Of `apply`, the destructive ones (listed separately; applied only when allowed). */
  destructive: ClassifiedStatement[];
  /** Statements that would undo the parent's own changes since the fork: left out. */
  keptParentChanges: ClassifiedStatement[];
  conflicts: MergeConflict[];
}

/**
 * A three-way merge of schemas. `toBranch` turns the parent as it is now into the branch;
 * `branchChanges` and `parentChanges` are what each side did since the fork (each diffed against
 * the schema at the fork point). A statement of `toBranch` on an object only the parent changed
 * would revert the parent's work: it is left out. One on an object both changed, where they
 * still differ, is a conflict.
 */
export function planMerge(i: { toBranch: ClassifiedStatement[]; branchChanges: ClassifiedStatement[]; parentChanges: ClassifiedStatement[] }): MergePlan {
  const touched = (s: ClassifiedStatement, side: ClassifiedStatement[]) => side.filter((o) => s.objects.some((a) => o.objects.some((b) => overlaps(a, b))));
  const apply: ClassifiedStatement[] = [];
  const keptParentChanges: ClassifiedStatement[] = [];
  const conflicts = new Map<string, MergeConflict>();
  for (const s of i.toBranch) {
    const byBranch = touched(s, i.branchChanges);
    const byParent = touched(s, i.parentChanges);
    if (byParent.length && byBranch.length) {
      for (const o of s.objects) {
        const c = conflicts.get(o.key) ?? { object: o.key, branch: [], parent: [] };
        for (const b of byBranch) if (!c.branch.includes(b.sql)) c.branch.push(b.sql);
        for (const p of byParent) if (!c.parent.includes(p.sql)) c.parent.push(p.sql);
        conflicts.set(o.key, c);
      }
    } else if (byParent.length) {
      keptParentChanges.push(s);
    } else {
      apply.push(s);
    }
  }
  return { apply, destructive: apply.filter((s) => s.destructive), keptParentChanges, conflicts: [...conflicts.values()] };
}

/** What a merge would do, as the diff step reports it. */
export interface SchemaMergePlan {
  /** The branch's changes to apply to the parent, in order (destructive ones flagged). */
  statements: ClassifiedStatement[];
  keptParentChanges: ClassifiedStatement[];
  conflicts: MergeConflict[];
}
