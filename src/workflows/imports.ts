import { ApplicationFailure } from '@temporalio/workflow';
import { catalog, host, Saga } from './common';
import type { ImportBranchRecordsInput } from '../activities/catalog';
import type { SourceInspection } from '../engine/sourceInspect';

export interface ImportDatabaseInput extends ImportBranchRecordsInput {
  operationId: string;
  /** The project's major: the new branch's cluster is of it. */
  pgVersion: number;
  /** The source DSN sealed with the platform's secret key: only the host activities open it. */
  sourceSealed: string;
}

export interface ImportDatabaseResult {
  branchId: string;
  endpointId: string;
  port: number;
  driver: string;
  /** Bytes of SQL that went from pg_dump into psql. */
  bytes: number;
  /** Objects of the dump's table of contents (tables, their data, indexes, …). */
  objects: number;
  tls: boolean;
  source: string;
}

/**
 * A new branch with an empty cluster of the project's major, filled by pg_dump | psql from an
 * external database. The source is checked first (nothing is made for a source that cannot be
 * imported); any later failure, or a cancellation, removes the branch and everything under it.
 * Seeds do not run on an imported branch: its data is the source's.
 */
export async function importDatabase(input: ImportDatabaseInput): Promise<ImportDatabaseResult> {
  const saga = new Saga(['check_source', 'catalog', 'reserve_port', 'init_cluster', 'start_compute', 'bootstrap_roles', 'import', 'finalize'], input.operationId);
  const h = host(input.hostId);
  try {
    const check = await saga.run('check_source', () => h.inspectImportSource({ sourceSealed: input.sourceSealed, targetMajor: input.pgVersion }));
    if (!check.ok) {
      throw ApplicationFailure.create({
        type: 'ImportSourceInvalid',
        message: `the source cannot be imported: ${check.errors.map((e) => e.message).join('; ')}`,
        nonRetryable: true,
        details: [{ errors: check.errors }],
      });
    }
    const { passwordSealed } = await saga.runGuarded(
      'catalog',
      () =>
        catalog.createImportBranchRecords({
          projectId: input.projectId,
          branchId: input.branchId,
          endpointId: input.endpointId,
          name: input.name,
          hostId: input.hostId,
          sourceRedacted: input.sourceRedacted,
        }),
      () => catalog.purgeBranch(input.branchId),
    );
    const port = await saga.runGuarded(
      'reserve_port',
      async () => {
        const p = await h.reservePort(input.endpointId);
        await catalog.recordEndpointPort({ endpointId: input.endpointId, port: p });
        return p;
      },
      () => h.removeEndpointFiles(input.endpointId),
    );
    const { driver } = await saga.runGuarded('init_cluster', () => h.createRootBranchData({ branchId: input.branchId, pgVersion: input.pgVersion }), () =>
      h.removeBranchData(input.branchId),
    );
    const { spec } = await catalog.endpointSpec(input.endpointId);
    const { limitsEnforced } = await saga.runGuarded('start_compute', () => h.startEndpoint(spec), async () => {
      await h.stopEndpoint({ endpointId: input.endpointId, branchId: input.branchId });
      await h.removeEndpointFiles(input.endpointId);
    });
    await saga.run('bootstrap_roles', () => h.bootstrapEndpoint({ spec, passwordSealed }));
    // Undone by the steps above (the compute stopped, the data dir removed), cancelled or not.
    const loaded = await saga.run('import', () => h.loadSourceDump({ spec, passwordSealed, sourceSealed: input.sourceSealed }));
    await saga.run('finalize', () => catalog.markBranchReady({ branchId: input.branchId, endpointId: input.endpointId, port, driver, lsn: null, limitsEnforced }));
    return await saga.succeed<ImportDatabaseResult>({
      branchId: input.branchId,
      endpointId: input.endpointId,
      port,
      driver,
      bytes: loaded.bytes,
      objects: loaded.objects,
      tls: loaded.tls,
      source: input.sourceRedacted,
    });
  } catch (err) {
    return saga.fail(err);
  }
}

export interface ValidateImportSourceInput {
  projectId: string;
  /** One per request: validations never queue behind each other. */
  checkId: string;
  /** The host that would run the import (the project's primary branch's). */
  hostId: string;
  pgVersion: number;
  sourceSealed: string;
}

/**
 * One host activity: the source checked from the machine that would read it, against the
 * extensions of the project's major there. A workflow only because host work reaches a host
 * through its task queue; it records nothing.
 */
export async function validateImportSource(input: ValidateImportSourceInput): Promise<SourceInspection> {
  return host(input.hostId).inspectImportSource({ sourceSealed: input.sourceSealed, targetMajor: input.pgVersion });
}
