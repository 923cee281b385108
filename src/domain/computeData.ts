import type { EndpointRole } from '../db/schema';

/**
 * The data dir an endpoint's compute serves, which is also the key the host engine locks and
 * supervises it by (EndpointSpec.branchId): a primary endpoint serves its branch's data dir; a
 * read replica serves a standby copy of its own, named after the replica's endpoint id.
 */
export function computeDataId(row: { id: string; branch_id: string; role?: EndpointRole | null }): string {
  return row.role === 'replica' ? row.id : row.branch_id;
}
