import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { defineRoute } from '../../route';
import type { ApiDeps } from '../../deps';
import { ApiError, conflict } from '../../errors';
import { answerAccepted, runOperation } from '../../operationRunner';
import { branchParams, databaseName } from '../../params';
import { requireBranch, requireEndpoint } from '../../lookup';
import { requireRunningCompute } from '../../compute';
import { retentionWindowStart } from '../../pointInTime';
import { findBranch } from '../../../db/queries/branches';
import { branchMerge } from '../../../operations';
import { mergeResultSchema, mergeView } from '../../views/merges';
import type { AuthContext } from '../../auth';

export function registerMergeRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  /** A ready branch's running primary compute: woken if suspended. */
  async function runningPrimary(auth: AuthContext, b: { id: string; project_id: string; status: string; compute_id: string | null }) {
    if (b.status !== 'ready') throw conflict(`branch ${b.id} is ${b.status}`);
    if (!b.compute_id) throw conflict(`branch ${b.id} has no compute`);
    return requireRunningCompute(deps, auth, await requireEndpoint(deps, auth, b.project_id, b.compute_id));
  }

  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/projects/{project_id}/branches/{branch_id}/merge',
    summary: "Merge the branch's schema changes (DDL only) into its parent: a three-way diff against the parent's schema at the fork point",
    tags: ['Branches'],
    action: 'branch.merge',
    params: branchParams,
    body: z
      .object({
        dry_run: z.boolean().default(false).openapi({ description: 'Only compute and classify the DDL; change nothing' }),
        allow_destructive: z.boolean().default(false).openapi({ description: 'Also apply drops of data and lossy type changes' }),
        database: databaseName,
      })
      .strict(),
    responses: {
      200: { description: 'The merge (or its preview)', schema: mergeResultSchema },
      202: { description: 'Still running; poll the operation', schema: z.object({ operation_id: z.string(), status: z.literal('running') }) },
      409: { description: 'Both sides changed the same objects (details.failure.conflicts), the parent refused the DDL, or the fork point cannot be read' },
      422: { description: 'The branch has no parent' },
    },
    handler: async (ctx, { params, body, auth }) => {
      const b = await requireBranch(deps, auth, params.project_id, params.branch_id);
      if (!b.parent_id) throw new ApiError(422, 'validation_failed', `branch ${b.id} has no parent to merge into`);
      const parent = await findBranch(deps.db, auth.orgId, b.project_id, b.parent_id);
      if (!parent) throw conflict(`the parent of branch ${b.id} is gone`);
      const [branchEp, parentEp] = [await runningPrimary(auth, b), await runningPrimary(auth, parent)];
      const outcome = await runOperation(deps, auth, branchMerge, {
        projectId: b.project_id,
        branchId: b.id,
        parentBranchId: parent.id,
        hostId: parent.host_id,
        branchEndpointId: branchEp.id,
        parentEndpointId: parentEp.id,
        database: body.database,
        dryRun: body.dry_run,
        allowDestructive: body.allow_destructive,
        windowStart: retentionWindowStart(deps),
      });
      if (!outcome.done) return answerAccepted(ctx, b.project_id, outcome.operationId, { status: 'running' });
      ctx.body = mergeView(outcome.result, outcome.operationId);
    },
  });
}
