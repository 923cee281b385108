import { z } from 'zod';
import '../zod';
import type { MergeBranchResult } from '../../workflows/merges';
import type { ClassifiedStatement } from '../../domain/schemaMerge';

const statementSchema = z
  .object({
    sql: z.string(),
    objects: z.array(z.string()).openapi({ description: 'What it touches: "column public.users.avatar", "relation public.audit", …' }),
    hazards: z.array(z.enum(['drop', 'data_loss', 'table_rewrite', 'long_lock', 'index_build'])),
    destructive: z.boolean().openapi({ description: 'Can lose data: applied only with allow_destructive' }),
    reasons: z.array(z.string()),
  })
  .openapi('MergeStatement');

export const mergeResultSchema = z
  .object({
    dry_run: z.boolean(),
    sql: z.string().openapi({ description: "The DDL that turns the parent's schema into the branch's for what the branch changed; one statement per line" }),
    changes: z.number().int().openapi({ description: 'Statements in sql' }),
    statements: z.array(statementSchema),
    destructive: z.array(z.string()).openapi({ description: 'The destructive statements of sql, listed apart' }),
    applied: z.array(z.string()).openapi({ description: 'Statements run on the parent, in one transaction (none for a dry run)' }),
    withheld: z.array(z.string()).openapi({ description: 'Destructive statements not applied because allow_destructive was false' }),
    kept_parent_changes: z.array(z.string()).openapi({ description: "Statements the diff proposed that would undo the parent's own changes since the fork: left out" }),
    operation_id: z.string(),
  })
  .openapi('MergeResult');

type MergeResultBody = z.infer<typeof mergeResultSchema>;

const statementView = (s: ClassifiedStatement) => ({ sql: s.sql, objects: s.objects.map((o) => o.key), hazards: s.hazards, destructive: s.destructive, reasons: s.reasons });

export function mergeView(r: MergeBranchResult, operationId: string): MergeResultBody {
  return {
    dry_run: r.dryRun,
    sql: r.statements.map((s) => `${s.sql};`).join('\n'),
    changes: r.statements.length,
    statements: r.statements.map(statementView),
    destructive: r.statements.filter((s) => s.destructive).map((s) => s.sql),
    applied: r.applied,
    withheld: r.withheld,
    kept_parent_changes: r.keptParentChanges.map((s) => s.sql),
    operation_id: operationId,
  };
}
