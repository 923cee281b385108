import { catalog, host, Saga } from './common';
import type { ReplayedQuery } from '../activities/replay';
import type { ReplayThresholds } from '../domain/replay';

export interface ReplayQueriesInput {
  operationId: string;
  projectId: string;
  hostId: string;
  sourceEndpointId: string;
  targetEndpointId: string;
  database: string;
  limit: number;
  repetitions: number;
  statementTimeoutMs: number;
  thresholds: ReplayThresholds;
}

export interface ReplayQueriesResult {
  queries: ReplayedQuery[];
  summary: { total: number; regressions: number; improvements: number; stable: number; skipped: number };
}

/**
 * The source's top statements replayed on the target: one activity per statement, so the
 * operation's step says how far it got ("replay 3/20") and a crash resumes where it stopped.
 * Changes nothing on either side (every run is rolled back).
 */
export async function replayQueries(input: ReplayQueriesInput): Promise<ReplayQueriesResult> {
  const saga = new Saga(['top_queries', 'replay'], input.operationId);
  const h = host(input.hostId);
  try {
    const source = await catalog.endpointSpec(input.sourceEndpointId);
    const target = await catalog.endpointSpec(input.targetEndpointId);
    const top = await saga.run('top_queries', () => h.topReplayStatements({ spec: source.spec, passwordSealed: source.passwordSealed, database: input.database, limit: input.limit }));
    const queries: ReplayedQuery[] = [];
    for (const [n, s] of top.entries()) {
      queries.push(
        await saga.run(`replay ${n + 1}/${top.length}`, () =>
          h.replayStatement({
            source: { spec: source.spec, passwordSealed: source.passwordSealed },
            target: { spec: target.spec, passwordSealed: target.passwordSealed },
            database: input.database,
            query: s.query,
            options: { repetitions: input.repetitions, statementTimeoutMs: input.statementTimeoutMs, thresholds: input.thresholds },
          }),
        ),
      );
    }
    const count = (st: string) => queries.filter((q) => q.status === st).length;
    const summary = { total: queries.length, regressions: count('regression'), improvements: count('improvement'), stable: count('stable'), skipped: count('skipped') };
    return await saga.succeed({ queries, summary });
  } catch (err) {
    return saga.fail(err);
  }
}
