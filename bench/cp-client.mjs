// The HTTP client for bench/control-plane.bench.mjs, in a process of its own (as agents and
// scripts are: they never share the control plane's event loop). undici's connection pool
// (keep-alive, one request per connection at a time), the way an SDK would call the API; it
// costs about half the CPU per request of node:http's client, and the client shares the
// machine's two cores with everything measured.
// Reads one JSON argument: { "url": "...", "key": "..." }. Each line on stdin is a job,
//   { "total": 300, "concurrency": 32, "runners": ["b0", ...] }
// answered with one JSON line once every request got its answer:
//   { "ok": 300, "cpuMs": <this process's CPU for the job> }  or  { "error": "..." }
import { createInterface } from 'node:readline';
import { Pool } from 'undici';

const { url, key } = JSON.parse(process.argv[2]);
const pool = new Pool(new URL(url).origin, { connections: 64, pipelining: 1 });
const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };

async function post(body) {
  const res = await pool.request({ path: '/api/v1/runs', method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.statusCode, body: await res.body.text() };
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
