import { host } from './common';
import type { EndpointSpec } from '../engine/host';

/**
 * The console's host work: a workflow only because host work reaches a host through its task
 * queue. One activity each; nothing to compensate.
 */

export interface ReadEndpointLogInput {
  projectId: string;
  hostId: string;
  endpointId: string;
  lines: number;
  /** One per request: reads never queue behind each other. */
  readId: string;
}

export async function readEndpointLog(input: ReadEndpointLogInput): Promise<string[]> {
  return host(input.hostId).readEndpointLog({ endpointId: input.endpointId, lines: input.lines });
}

export interface ManageExtensionInput {
  operationId: string;
  projectId: string;
  branchId: string;
  hostId: string;
  spec: EndpointSpec;
  database: string;
  name: string;
  action: 'create' | 'drop';
}

/** An extension cloud_admin may not create or drop alone, by the platform's superuser on its host. */
export async function manageExtension(input: ManageExtensionInput): Promise<{ name: string; action: 'create' | 'drop' }> {
  await host(input.hostId).manageExtension({ spec: input.spec, database: input.database, name: input.name, action: input.action });
  return { name: input.name, action: input.action };
}

export interface ReadEndpointMetricsInput {
  projectId: string;
  hostId: string;
  spec: EndpointSpec;
  readId: string;
}

/** The live numbers of one compute, measured on its host. */
export async function readEndpointMetrics(input: ReadEndpointMetricsInput) {
  return host(input.hostId).sampleEndpointMetrics(input.spec);
}
