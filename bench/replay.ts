/**
 * Query replay's verdicts and wall time: 20 statements run as a workload on the primary, a
 * branch with 10 planted changes (6 dropped indexes, 2 column type changes that widen the rows
 * a scan reads, 2 views given extra work) and 10 statements on tables nothing touched; then
 * POST /v1/projects/{id}/replay {limit: 20}, `--runs` times. Prints the wall time (median), how
 * many planted regressions were found and how many controls were called a regression.
 *
 *   npm run bench:replay -- [--runs 3] [--rows 30000]
 */
import { argNumber, machineLoad, median, startBenchStack, table, expectStatus, type BenchStack } from './support';

const RUNS = argNumber('runs', 3);
const ROWS = argNumber('rows', 30000);

interface Case {
  name: string;
  /** The workload's statement; `%s` is replaced by a varying constant. */
  sql: string;
  /** What pg_stat_statements shows for it (a fragment to find it by). */
  match: RegExp;
  planted?: string;
}

const cases: Case[] = [
  ...[1, 2, 3, 4, 5, 6].map((n) => ({ name: `t${n} by k`, sql: `SELECT id, v FROM t${n} WHERE k = %s`, match: new RegExp(`FROM t${n} WHERE k = \\$1`), planted: `DROP INDEX t${n}_k_idx` })),
  ...[7, 8].map((n) => ({ name: `t${n} scan by v`, sql: `SELECT count(*) FROM t${n} WHERE v = %s`, match: new RegExp(`FROM t${n} WHERE v = \\$1`), planted: `ALTER TABLE t${n} ALTER COLUMN note TYPE char(600)` })),
  ...[9, 10].map((n) => ({
    name: `v${n} by id`,
    sql: `SELECT * FROM v${n} WHERE id = %s`,
    match: new RegExp(`FROM v${n} WHERE id = \\$1`),
    planted: `CREATE OR REPLACE VIEW v${n} AS SELECT a.id, a.k, a.v, a.note, (SELECT count(*) FROM c1 x WHERE x.v = a.v) AS extra FROM t${n} a`,
  })),
  ...[1, 2, 3, 4, 5].map((n) => ({ name: `c${n} by k`, sql: `SELECT id, v FROM c${n} WHERE k = %s`, match: new RegExp(`FROM c${n} WHERE k = \\$1`) })),
  ...[6, 7, 8, 9, 10].map((n) => ({ name: `c${n} scan by v`, sql: `SELECT count(*) FROM c${n} WHERE v < %s`, match: new RegExp(`FROM c${n} WHERE v < \\$1`) })),
];

async function sql(b: BenchStack, projectId: string, endpointId: string, query: string) {
  return expectStatus(b, 'POST', `/v1/projects/${projectId}/endpoints/${endpointId}/sql`, { query, timeout_ms: 120_000 }, [200]);
}

async function main() {
  const loadBefore = machineLoad();
  const b = await startBenchStack({ prefix: 'lampion-bench-replay-', env: { LAMPION_API_WAIT_MS: '600000', LAMPION_RATE_LIMIT_PER_MINUTE: '100000000' } });
  try {
    const project = await expectStatus(b, 'POST', '/v1/projects', { name: 'replay-bench' }, [201]);
    await expectStatus(b, 'PATCH', `/v1/projects/${project.id}/endpoints/${project.endpoint_id}`, { auto_suspend_seconds: 0 }, [200, 202]);
    const setup: string[] = [];
    for (const t of [...Array.from({ length: 10 }, (_, i) => `t${i + 1}`), ...Array.from({ length: 10 }, (_, i) => `c${i + 1}`)]) {
      setup.push(
        `CREATE TABLE ${t} (id serial PRIMARY KEY, k int NOT NULL, v int NOT NULL, note text)`,
        `INSERT INTO ${t} (k, v, note) SELECT g % 1000, g % 500, md5(g::text) FROM generate_series(1, ${ROWS}) g`,
        `CREATE INDEX ${t}_k_idx ON ${t} (k)`,
      );
    }
    setup.push('CREATE VIEW v9 AS SELECT a.id, a.k, a.v, a.note, 0::bigint AS extra FROM t9 a', 'CREATE VIEW v10 AS SELECT a.id, a.k, a.v, a.note, 0::bigint AS extra FROM t10 a');
    process.stderr.write(`[replay] setup: 20 tables of ${ROWS} rows\n`);
    await sql(b, project.id, project.endpoint_id, setup.join(';\n'));
    await sql(b, project.id, project.endpoint_id, 'VACUUM ANALYZE');
    await expectStatus(b, 'POST', `/v1/projects/${project.id}/endpoints/${project.endpoint_id}/analyse/reset-stats`, undefined, [200]);
    for (let i = 0; i < 10; i++) for (const c of cases) await sql(b, project.id, project.endpoint_id, c.sql.replace('%s', String(17 + i * 37)));

    const branch = await expectStatus(b, 'POST', `/v1/projects/${project.id}/branches`, { name: 'migrated' }, [201]);
    await expectStatus(b, 'PATCH', `/v1/projects/${project.id}/endpoints/${branch.compute_id}`, { auto_suspend_seconds: 0 }, [200, 202]);
    await sql(b, project.id, branch.compute_id, cases.filter((c) => c.planted).map((c) => c.planted).join(';\n'));
    await sql(b, project.id, branch.compute_id, 'VACUUM ANALYZE');

    const walls: number[] = [];
    const rows: string[][] = [];
    let detectedTotal = 0;
    let falsePositives = 0;
    let notSeen = 0;
    for (let run = 0; run < RUNS; run++) {
      const t0 = performance.now();
      const r = await expectStatus(b, 'POST', `/v1/projects/${project.id}/replay`, { source_endpoint_id: project.endpoint_id, target_endpoint_id: branch.compute_id, limit: 20 }, [200]);
      walls.push(performance.now() - t0);
      let detected = 0;
      let fp = 0;
      for (const q of r.queries) if (q.status === 'skipped') process.stderr.write(`[replay] run ${run + 1}: skipped ${q.query.slice(0, 80)}: ${q.reason}\n`);
      for (const c of cases) {
        const q = r.queries.find((x: any) => c.match.test(x.query));
        if (!q) {
          notSeen++;
          if (run === 0) rows.push([c.name, c.planted ? 'planted' : 'control', 'not in the top 20', '']);
          continue;
        }
        if (c.planted && q.status === 'regression') detected++;
        if (!c.planted && q.status === 'regression') {
          fp++;
          process.stderr.write(`[replay] run ${run + 1}: false positive ${c.name}: ${q.reason}\n`);
        }
        if (c.planted && q.status !== 'regression') process.stderr.write(`[replay] run ${run + 1}: missed ${c.name}: ${q.status} ${q.reason}\n`);
        if (run === 0) rows.push([c.name, c.planted ? 'planted' : 'control', q.status, q.reason ?? '']);
      }
      detectedTotal += detected;
      falsePositives += fp;
      process.stderr.write(`[replay] run ${run + 1}: ${(walls[run] / 1000).toFixed(2)} s, ${detected}/10 planted found, ${fp} false positives, summary ${JSON.stringify(r.summary)}\n`);
    }
    console.log(`\nQuery replay: 20 statements (10 planted changes, 10 controls), ${RUNS} runs, ${ROWS} rows per table`);
    console.log(`${loadBefore} at start; ${machineLoad()} at end\n`);
    console.log(table(['statement', 'kind', 'verdict (first run)', 'reason'], rows.map((r) => [r[0], r[1], r[2], r[3].slice(0, 110)])));
    console.log('');
    console.log(`wall time of a 20-statement replay: median ${(median(walls) / 1000).toFixed(2)} s (${walls.map((w) => (w / 1000).toFixed(2)).join(', ')})`);
    console.log(`planted regressions found: ${detectedTotal}/${10 * RUNS} (${(detectedTotal / (10 * RUNS)).toFixed(2)}); false positives: ${falsePositives} of ${10 * RUNS} control verdicts; statements missing from the top 20: ${notSeen}`);
  } finally {
    await b.stop();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
