/**
 * The SQL API against the wire protocol: requests per second and median latency of
 * POST …/endpoints/{id}/sql {"query":"SELECT 1"} (HTTP keep-alive, one connection per client, with
 * undici — the client under Node's fetch — and with node:http's client)
 * beside the same statement sent by node-postgres through the proxy (TLS, one connection per
 * client), at 1 and 8 concurrent clients, alternating, in one run. The load runs in a process of
 * its own (bench/sqlApiLoad.ts); the stack (API, proxy, compute) runs in this one.
 *
 *   npm run bench:sql-api -- [--reps 3] [--seconds 8] [--clients 1,8]
 *
 * The compute is resized to the tier with as many vCPUs as the host, auto-suspend off, so its
 * cgroup quota bounds neither path.
 */
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { CU_TIERS } from '../src/domain/sizing';
import { argList, argNumber, machineLoad, median, startBenchStack, table, expectStatus } from './support';

const REPS = argNumber('reps', 3);
const SECONDS = argNumber('seconds', 8);
const CLIENTS = argList('clients', ['1', '8']).map(Number);
const CPUS = os.cpus().length;
const CU = CU_TIERS.find((cu) => cu >= CPUS) ?? CU_TIERS[CU_TIERS.length - 1];

interface LoadResult {
  requests: number;
  failures: number;
  seconds: number;
  cpu_ms: number;
  latencies_ms: { median: number; p95: number };
}

function load(job: Record<string, unknown>): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(__dirname, 'sqlApiLoad.js'), JSON.stringify(job)], { maxBuffer: 1 << 20, timeout: (SECONDS + 60) * 1000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`load generator failed: ${stderr || err.message}`));
      resolve(JSON.parse(stdout) as LoadResult);
    });
  });
}

async function main() {
  const loadBefore = machineLoad();
  // The API's per-key rate limit would otherwise be what this measures.
  const b = await startBenchStack({ prefix: 'lampion-bench-sql-', env: { LAMPION_RATE_LIMIT_PER_MINUTE: '100000000' } });
  try {
    const project = await expectStatus(b, 'POST', '/v1/projects', { name: 'sql-bench' }, [201]);
    await expectStatus(b, 'PATCH', `/v1/projects/${project.id}/endpoints/${project.endpoint_id}`, { auto_suspend_seconds: 0, compute_cu: CU }, [200, 202]);
    const url = `${b.api}/v1/projects/${project.id}/endpoints/${project.endpoint_id}/sql`;
    const jobs = {
      http: (clients: number) => ({ mode: 'http', clients, seconds: SECONDS, url, key: b.key }),
      undici: (clients: number) => ({ mode: 'undici', clients, seconds: SECONDS, url, key: b.key }),
      wire: (clients: number) => ({ mode: 'wire', clients, seconds: SECONDS, connectionString: project.connection_string, ca: b.ca }),
    };
    const rps: Record<string, number[]> = {};
    const lat: Record<string, number[]> = {};
    // CPU per request: of the load generator (the client) and of this process (API or proxy).
    const clientUs: Record<string, number[]> = {};
    const stackUs: Record<string, number[]> = {};
    const record = (name: string, r: LoadResult, stackCpuMs: number) => {
      (rps[name] ??= []).push(r.requests / r.seconds);
      (lat[name] ??= []).push(r.latencies_ms.median);
      (clientUs[name] ??= []).push((r.cpu_ms * 1000) / r.requests);
      (stackUs[name] ??= []).push((stackCpuMs * 1000) / r.requests);
      process.stderr.write(`[sql-api] ${name}: ${(r.requests / r.seconds).toFixed(0)} rps, median ${r.latencies_ms.median.toFixed(2)} ms, p95 ${r.latencies_ms.p95.toFixed(2)} ms${r.failures ? `, ${r.failures} failures` : ''}\n`);
    };
    for (let rep = 0; rep < REPS; rep++) {
      for (const clients of CLIENTS) {
        // Alternate which path goes first.
        const order = rep % 2 ? (['wire', 'undici', 'http'] as const) : (['http', 'undici', 'wire'] as const);
        for (const mode of order) {
          const cpu0 = process.cpuUsage();
          const r = await load(jobs[mode](clients));
          const cpu = process.cpuUsage(cpu0);
          // Includes the generator's warm-up and start; a fraction of a percent of the run.
          record(`${mode} ${clients}`, r, (cpu.user + cpu.system) / 1000);
        }
      }
    }
    console.log(`\nSQL API vs wire protocol: SELECT 1, ${REPS} × ${SECONDS} s per cell, alternating; compute ${CU} CU`);
    console.log(`${loadBefore} at start; ${machineLoad()} at end\n`);
    const rows: string[][] = [];
    for (const clients of CLIENTS) {
      const label = { http: 'POST …/sql (node:http client)', undici: 'POST …/sql (undici client)', wire: 'pg through the proxy (TLS)' } as const;
      for (const mode of ['http', 'undici', 'wire'] as const) {
        const k = `${mode} ${clients}`;
        rows.push([
          `${label[mode]}, ${clients} client${clients > 1 ? 's' : ''}`,
          median(rps[k]).toFixed(0),
          `${median(lat[k]).toFixed(2)} ms`,
          `${median(clientUs[k]).toFixed(0)} / ${median(stackUs[k]).toFixed(0)}`,
        ]);
      }
    }
    console.log(table(['path', 'rps (median)', 'latency (median)', 'CPU µs per request: client / API or proxy process'], rows));
    console.log('');
    for (const clients of CLIENTS) {
      const wire = median(rps[`wire ${clients}`]);
      const ratio = (m: string) => (median(rps[`${m} ${clients}`]) / wire).toFixed(2);
      console.log(`ratio HTTP ÷ wire at ${clients} client${clients > 1 ? 's' : ''}: undici ${ratio('undici')}, node:http ${ratio('http')}${clients === 8 ? ' (target ≥ 0.5)' : ''}`);
    }
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
