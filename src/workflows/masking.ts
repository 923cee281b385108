import { catalog, host, Saga } from './common';

export interface SetBranchMaskingInput {
  operationId: string;
  projectId: string;
  branchId: string;
  endpointId: string;
  hostId: string;
  /** apply: enable, or remake after a rule changed; disable: remove everything masking made. */
  action: 'apply' | 'disable';
  database: string;
  /** The analyst's password, sealed; used when masking is not on yet (later applies keep theirs). */
  analystPasswordSealed: string;
}

/**
 * Dynamic masking of a branch made, remade or removed on its compute (one transaction each),
 * then recorded: rules and state live in the catalog, the masked views in the database.
 */
export async function setBranchMasking(input: SetBranchMaskingInput): Promise<{ enabled: boolean; transition?: 'enabled' | 'disabled' }> {
  const saga = new Saga([input.action, 'record'], input.operationId);
  const h = host(input.hostId);
  try {
    const { spec } = await catalog.endpointSpec(input.endpointId);
    const { rules, state } = await catalog.maskingInputs(input.branchId);
    if (input.action === 'disable') {
      if (state) {
        await saga.run('disable', () => h.removeBranchMasking({ spec, database: state.database, applied: { revokedSchemas: state.revoked_schemas, revokedDatabases: state.revoked_databases } }));
        await saga.run('record', () => catalog.recordMasking({ branchId: input.branchId, state: null }));
      }
      // What webhooks announce: only a change of on/off, not a remake after a rule changed.
      return await saga.succeed({ enabled: false, ...(state ? { transition: 'disabled' as const } : {}) });
    }
    const database = state?.database ?? input.database;
    const passwordSealed = state?.password_enc ?? input.analystPasswordSealed;
    const applied = await saga.run('apply', () =>
      h.applyBranchMasking({
        spec,
        database,
        rules,
        knownColumns: state?.known_columns ?? null,
        analystPasswordSealed: passwordSealed,
        ...(state ? { previous: { knownColumns: state.known_columns, revokedSchemas: state.revoked_schemas, revokedDatabases: state.revoked_databases } } : {}),
      }),
    );
    await saga.run('record', () =>
      catalog.recordMasking({
        branchId: input.branchId,
        state: {
          database,
          password_enc: passwordSealed,
          known_columns: applied.knownColumns,
          revoked_schemas: applied.revokedSchemas,
          revoked_databases: applied.revokedDatabases,
          enabled_at: state?.enabled_at ?? new Date().toISOString(),
        },
      }),
    );
    return await saga.succeed({ enabled: true, ...(state ? {} : { transition: 'enabled' as const }) });
  } catch (err) {
    return saga.fail(err);
  }
}
