/**
 * The load generator of bench/sql-api, in a process of its own (the stack under test runs in the
 * bench's process: a generator sharing its event loop would slow both paths alike and hide the
 * difference). `node sqlApiLoad.js <json>` with {mode: "http"|"wire", clients, seconds, ...};
 * prints {requests, seconds, cpu_ms (its own CPU while loading), latencies_ms: {median, p95}} as JSON.
 */
import { Client } from 'pg';
import http from 'node:http';
import { Pool } from 'undici';

interface Job {
  /** http: node:http's client; undici: the client under Node's fetch; wire: pg through the proxy. */
  mode: 'http' | 'undici' | 'wire';
  clients: number;
  seconds: number;
  url?: string;
  key?: string;
  connectionString?: string;
  ca?: string;
}

async function main() {
  const job = JSON.parse(process.argv[2]) as Job;
  const latencies: number[] = [];
  let requests = 0;
  let failures = 0;
  let stop = false;
  const loops: Promise<void>[] = [];
  let warm: () => Promise<void>;
  let one: (i: number) => Promise<void>;
  const clients: Client[] = [];
  if (job.mode === 'http') {
    // One kept-alive connection per client, as a pooled HTTP client would hold.
    const agent = new http.Agent({ keepAlive: true, maxSockets: job.clients });
    const body = JSON.stringify({ query: 'SELECT 1' });
    const url = new URL(job.url!);
    const headers = { authorization: `Bearer ${job.key}`, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
    one = () =>
      new Promise<void>((resolve, reject) => {
        const req = http.request({ agent, host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d) => (text += d));
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`))));
        });
        req.on('error', reject);
        req.end(body);
      });
    warm = async () => {
      await Promise.all(Array.from({ length: job.clients }, () => one(0)));
    };
  } else if (job.mode === 'undici') {
    // One kept-alive connection per client, no pipelining: a request waits for its answer.
    const url = new URL(job.url!);
    const pool = new Pool(url.origin, { connections: job.clients, pipelining: 1 });
    const body = JSON.stringify({ query: 'SELECT 1' });
    const headers = { authorization: `Bearer ${job.key}`, 'content-type': 'application/json' };
    one = async () => {
      const res = await pool.request({ path: url.pathname, method: 'POST', headers, body });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
    };
    warm = async () => {
      await Promise.all(Array.from({ length: job.clients }, () => one(0)));
    };
  } else {
    for (let i = 0; i < job.clients; i++) {
      const c = new Client({ connectionString: job.connectionString!.replace(/\?.*$/, ''), ssl: { ca: job.ca, rejectUnauthorized: true, servername: new URL(job.connectionString!).hostname } });
      await c.connect();
      clients.push(c);
    }
    one = async (i) => {
      await clients[i].query('SELECT 1');
    };
    warm = async () => {
      await Promise.all(clients.map((_, i) => one(i)));
    };
  }
  await warm();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < job.clients; i++) {
    loops.push(
      (async () => {
        while (!stop) {
          const s = performance.now();
          try {
            await one(i);
            latencies.push(performance.now() - s);
            requests++;
          } catch (err) {
            failures++;
            if (failures > 10) throw err;
          }
        }
      })(),
    );
  }
  await new Promise((r) => setTimeout(r, job.seconds * 1000));
  stop = true;
  await Promise.all(loops);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await Promise.all(clients.map((c) => c.end()));
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  process.stdout.write(JSON.stringify({ requests, failures, seconds, cpu_ms: (cpu.user + cpu.system) / 1000, latencies_ms: { median: q(0.5), p95: q(0.95) } }));
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
