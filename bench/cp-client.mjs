// The HTTP client for bench/control-plane.bench.mjs, in a process of its own (as agents and
// scripts are: they never share the control plane's event loop). node:http with a keep-alive
// agent, the way curl or an SDK with a connection pool would call the API.
// Reads one JSON argument: { "url": "...", "key": "..." }. Each line on stdin is a job,
//   { "total": 300, "concurrency": 32, "runners": ["b0", ...] }
// answered with one JSON line once every request got its answer:
//   { "ok": 300, "cpuMs": <this process's CPU for the job> }  or  { "error": "..." }
import http from 'node:http';
import { createInterface } from 'node:readline';

const { url, key } = JSON.parse(process.argv[2]);
const target = new URL('/api/v1/runs', url);
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function post(body) {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      target,
      {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${key}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(data),
        },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

async function job({ total, concurrency, runners }) {
  const cpu0 = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const r = await post({
          runner: runners[i % runners.length],
          action: 'showcase.echo',
          args: { message: `m${i}` },
          reason: 'bench',
        });
        if (r.status !== 201) throw new Error(`dispatch failed (${r.status}): ${r.body}`);
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  return { ok: total, cpuMs: (cpu.user + cpu.system) / 1000 };
}

createInterface({ input: process.stdin }).on('line', (line) => {
  job(JSON.parse(line)).then(
    (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
    (e) => process.stdout.write(`${JSON.stringify({ error: String(e?.message ?? e) })}\n`),
  );
});
process.stdin.on('end', () => process.exit(0));
