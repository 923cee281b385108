import type { AuthContext } from './auth';
import type { ApiDeps } from './deps';
import { ApiError, conflict } from './errors';
import { runOperation } from './operationRunner';
import { requireEndpoint } from './lookup';
import { findBranch } from '../db/queries/branches';
import type { EndpointListRow } from '../db/queries/endpoints';
import { decryptSecret } from '../domain/secrets';
import { USER_ROLE } from '../domain/roles';
import { endpointResume } from '../operations';

/** Between looks at the catalog while another operation holds the endpoint's state. */
const SETTLE_POLL_MS = 250;

/**
 * The endpoint with its compute running: a suspended compute is woken through the resume
 * operation, waited for as every route waits (up to LAMPION_API_WAIT_MS). A wake already under
 * way (the proxy's, another request's) holds the endpoint's state id: then the catalog is watched
 * until that settles. Never wakes a compute whose branch is being reset or deleted.
 */
export async function requireRunningCompute(deps: ApiDeps, auth: AuthContext, ep: EndpointListRow): Promise<EndpointListRow & { port: number }> {
  const deadline = Date.now() + deps.config.apiWaitMs;
  for (;;) {
    if (ep.status === 'running') {
      if (ep.port === null) throw new ApiError(502, 'compute_unavailable', `endpoint ${ep.id} has no compute port`);
      return ep as EndpointListRow & { port: number };
    }
    if (ep.status !== 'suspended') throw conflict(`endpoint ${ep.id} is ${ep.status}`);
    const branch = await findBranch(deps.db, auth.orgId, ep.project_id, ep.branch_id);
    if (branch?.status !== 'ready') throw conflict(`endpoint ${ep.id} is suspended and its branch is ${branch?.status ?? 'gone'}; try again when that finishes`);
    try {
      const outcome = await runOperation(deps, auth, endpointResume, { projectId: ep.project_id, endpointId: ep.id, branchId: ep.branch_id, hostId: ep.host_id });
      if (!outcome.done) {
        throw new ApiError(503, 'compute_waking', `endpoint ${ep.id} is still waking; retry shortly`, { operation_id: outcome.operationId }, { 'Retry-After': '5' });
      }
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 409) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, SETTLE_POLL_MS));
    }
    ep = await requireEndpoint(deps, auth, ep.project_id, ep.id);
  }
}

/**
 * How the platform itself reaches a compute on this host as the user role: loopback TCP to the
 * compute's port with the endpoint's password (the API runs beside the computes; see README).
 */
export function directUserAccess(deps: ApiDeps, ep: EndpointListRow & { port: number }) {
  return { host: '127.0.0.1', port: ep.port, user: USER_ROLE, password: decryptSecret(ep.pg_password_enc, deps.secretKey) };
}
