import type Router from '@koa/router';
import type { OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { answerSlice, pagination } from '../../pagination';
import { defineRoute } from '../../route';
import type { ApiDeps } from '../../deps';
import { conflict, notFound } from '../../errors';
import { answerAccepted, runOperation } from '../../operationRunner';
import { branchParams, replicaParams } from '../../params';
import { publicAccess, requireBranch } from '../../lookup';
import { replicaSchema, replicaStateSchema, replicaView } from '../../views/replicas';
import { findReplica, listReplicas } from '../../../db/queries/replicas';
import { endpointById } from '../../../db/queries/endpoints';
import { newId } from '../../../domain/ids';
import { COMPUTE_SIZES, isComputeSize } from '../../../domain/sizing';
import { replicaCreate, replicaDelete, replicaResume, replicaSuspend } from '../../../operations';
import type { AuthContext } from '../../auth';

/** Each streaming replica holds one of the primary's WAL senders (10), and a fork may take two. */
export const MAX_REPLICAS_PER_BRANCH = 5;

const cu = z.number().refine(isComputeSize, { message: `must be one of ${COMPUTE_SIZES.map((s) => s.cu).join(', ')}` });

export function registerReplicaRoutes(router: Router, registry: OpenAPIRegistry, deps: ApiDeps) {
  async function requireReplica(auth: AuthContext, p: z.infer<typeof replicaParams>) {
    await requireBranch(deps, auth, p.project_id, p.branch_id);
    const r = await findReplica(deps.db, auth.orgId, p.project_id, p.branch_id, p.replica_id);
    if (!r) throw notFound('replica', p.replica_id);
    return r;
  }

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/branches/{branch_id}/replicas',
    summary: 'List read replicas of a branch',
    tags: ['Replicas'],
    action: 'replica.read',
    params: branchParams,
    query: pagination,
    responses: { 200: { description: 'Replicas, oldest first', schema: z.array(replicaSchema) } },
    handler: async (ctx, { params, auth, query }) => {
      await requireBranch(deps, auth, params.project_id, params.branch_id);
      const rows = await listReplicas(deps.db, auth.orgId, params.project_id, params.branch_id);
      answerSlice(ctx, query, rows.map((r) => replicaView(r, publicAccess(deps, auth, r))));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'get',
    path: '/v1/projects/{project_id}/branches/{branch_id}/replicas/{replica_id}',
    summary: 'Get a read replica, with its replication lag as last measured',
    tags: ['Replicas'],
    action: 'replica.read',
    params: replicaParams,
    responses: { 200: { description: 'The replica', schema: replicaSchema } },
    handler: async (ctx, { params, auth }) => {
      const r = await requireReplica(auth, params);
      ctx.body = replicaView(r, publicAccess(deps, auth, r));
    },
  });

  defineRoute(router, registry, deps, {
    method: 'post',
    path: '/v1/projects/{project_id}/branches/{branch_id}/replicas',
    summary: "Create a read replica: a hot standby of the branch with its own endpoint, connection string and size; writes fail with SQLSTATE 25006",
    tags: ['Replicas'],
    action: 'replica.create',
    params: branchParams,
    body: z.object({ compute_cu: cu.optional().openapi({ description: "The replica's own size; the primary's by default" }) }).strict(),
    responses: {
      201: { description: 'Created and running', schema: replicaSchema },
      202: { description: 'Still provisioning; poll the operation', schema: replicaStateSchema },
      409: { description: 'The branch is not ready, or has the most replicas allowed' },
    },
    handler: async (ctx, { params, body, auth }) => {
      const b = await requireBranch(deps, auth, params.project_id, params.branch_id);
      if (b.status !== 'ready') throw conflict(`branch ${b.id} is ${b.status}`);
      if (!b.compute_id) throw conflict(`branch ${b.id} has no compute`);
      const existing = await listReplicas(deps.db, auth.orgId, b.project_id, b.id);
      if (existing.length >= MAX_REPLICAS_PER_BRANCH) throw conflict(`branch ${b.id} already has ${existing.length} replicas (at most ${MAX_REPLICAS_PER_BRANCH})`);
      const replicaId = newId('endpoint');
      const outcome = await runOperation(deps, auth, replicaCreate, { projectId: b.project_id, branchId: b.id, replicaId, hostId: b.host_id, computeCu: body.compute_cu });
      if (!outcome.done) return answerAccepted(ctx, b.project_id, outcome.operationId, { id: replicaId, status: 'provisioning' });
      const r = (await endpointById(deps.db, replicaId))!;
      ctx.status = 201;
      ctx.body = { ...replicaView(r, publicAccess(deps, auth, r), outcome.result.replication), operation_id: outcome.operationId };
    },
  });

  defineRoute(router, registry, deps, {
    method: 'delete',
    path: '/v1/projects/{project_id}/branches/{branch_id}/replicas/{replica_id}',
    summary: 'Delete a read replica: its compute stopped, its data and endpoint removed',
    tags: ['Replicas'],
    action: 'replica.delete',
    params: replicaParams,
    responses: {
      204: { description: 'Deleted' },
      202: { description: 'Still deleting; poll the operation', schema: replicaStateSchema },
      409: { description: 'Another operation holds the replica' },
    },
    handler: async (ctx, { params, auth }) => {
      const r = await requireReplica(auth, params);
      if (r.status === 'provisioning') throw conflict(`replica ${r.id} is still provisioning`);
      const outcome = await runOperation(deps, auth, replicaDelete, { projectId: r.project_id, branchId: r.branch_id, replicaId: r.id, hostId: r.host_id });
      if (!outcome.done) return answerAccepted(ctx, r.project_id, outcome.operationId, { id: r.id, status: 'deleting' });
      ctx.status = 204;
    },
  });

  for (const verb of ['suspend', 'resume'] as const) {
    defineRoute(router, registry, deps, {
      method: 'post',
      path: `/v1/projects/{project_id}/branches/{branch_id}/replicas/{replica_id}/${verb}`,
      summary: verb === 'suspend' ? 'Suspend a read replica (scale to zero; the primary is not affected)' : 'Resume a suspended replica; it catches up by streaming, or from the archive while the primary is suspended',
      tags: ['Replicas'],
      action: 'replica.suspend',
      params: replicaParams,
      responses: {
        200: { description: 'New state', schema: replicaStateSchema },
        202: { description: 'Still running; poll the operation', schema: replicaStateSchema },
        409: { description: 'Another operation holds the replica' },
      },
      handler: async (ctx, { params, auth }) => {
        const r = await requireReplica(auth, params);
        const target = verb === 'suspend' ? 'suspended' : 'running';
        if (r.status === target) {
          ctx.body = { id: r.id, status: r.status };
          return;
        }
        if ((verb === 'suspend' && r.status !== 'running') || (verb === 'resume' && r.status !== 'suspended')) throw conflict(`replica ${r.id} is ${r.status}`);
        const input = { projectId: r.project_id, endpointId: r.id, branchId: r.branch_id, hostId: r.host_id };
        if (verb === 'suspend') {
          const outcome = await runOperation(deps, auth, replicaSuspend, input);
          if (!outcome.done) return answerAccepted(ctx, r.project_id, outcome.operationId, { id: r.id, status: r.status });
          ctx.body = { id: r.id, status: target, operation_id: outcome.operationId };
          return;
        }
        const outcome = await runOperation(deps, auth, replicaResume, input);
        if (!outcome.done) return answerAccepted(ctx, r.project_id, outcome.operationId, { id: r.id, status: r.status });
        ctx.body = { id: r.id, status: target, operation_id: outcome.operationId, replication: outcome.result.replication };
      },
    });
  }
}
