// Sustained load: 1,000 simulated runners (bench/load-runner.mjs, the real wire protocol
// over real WebSockets) connected to real control-plane processes (bench/load-server.mjs), and a steady stream
// of runs requested through the HTTP API for a fixed time — on one instance with SQLite and
// on three instances sharing PostgreSQL (runners spread over them, runs requested round
// robin, so most dispatches are routed to another instance with LISTEN/NOTIFY). Reports
// runs/s, dispatch latency (request sent → run_action at the runner), end-to-end latency
// (request sent → result acknowledged), server memory, errors (must be zero) and the audit
// chain verification at the end. 10 minutes per setup; --quick: 30 s.
// Knobs (environment): AIRLOCK_LOAD_SECONDS, AIRLOCK_LOAD_RUNNERS (1000), AIRLOCK_LOAD_RATE (runs/s, 10).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDatabase } from '../packages/server/dist/index.js';
import { createRunner, redeemBootstrapKey } from '../packages/server/dist/runners/runner-store.js';
import { mintTestKey, ownerId } from '../packages/server/dist/testing/index.js';
import { startPgCluster } from '../scripts/pg-cluster.mjs';
import { loadStats, SimRunner } from './load-runner.mjs';

const here = resolve(fileURLToPath(import.meta.url), '..');
const serverScript = join(here, 'load-server.mjs');
const pct = (xs, p) =>
  xs.length === 0
    ? Number.NaN
    : [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function rssOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(s)?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

async function freePort() {
  const { createServer } = await import('node:net');
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

async function startServer(dir, i, database) {
  const port = await freePort();
  const child = spawn(process.execPath, [serverScript, `127.0.0.1:${port}`, database, join(dir, `server-${i}`)], {
    env: { ...process.env, AIRLOCK_HOME: join(dir, `server-${i}`) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d.toString();
  });
  child.stderr.on('data', (d) => {
    out += d.toString();
  });
  const end = Date.now() + 60_000;
  while (!/listening on/.test(out)) {
    if (child.exitCode !== null || Date.now() > end) throw new Error(`server ${i} did not start:\n${out}`);
    await sleep(50);
  }
  return { child, url: `http://127.0.0.1:${port}`, output: () => out };
}

/** Run `fn` over `items` with at most `n` at a time. */
async function pool(items, n, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i], i);
      }
    }),
  );
}

async function scenario({ label, instances, database, seconds, nRunners, rate }) {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-bench-load-'));
  const servers = [];
  const sims = [];
  try {
    servers.push(await startServer(dir, 0, database)); // migrates
    for (let i = 1; i < instances; i++) servers.push(await startServer(dir, i, database));
    const db = await openDatabase(database);
    const org = (await db.kysely.selectFrom('orgs').select('id').executeTakeFirstOrThrow()).id;
    const key = await mintTestKey(db, org, await ownerId(db, org), [
      'runs:read',
      'runs:write',
      'runners:write',
      'runners:read',
      'packs:trust',
      'packs:read',
      'audit:read',
    ]);
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    const call = async (i, method, path, body) => {
      const r = await fetch(servers[i % instances].url + path, {
        method,
        headers: body === undefined ? { authorization: headers.authorization } : headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: r.status, body: await r.json() };
    };

    // Runners: created and registered in the database (setup, not measured; the API path for
    // that is covered by the tests), then connected round robin to the instances over the wire.
    const stats = loadStats();
    const names = Array.from({ length: nRunners }, (_, i) => `sim-${i}`);
    await pool(names, 8, async (name, i) => {
      const { bootstrapKey } = await createRunner(db, org, name, {});
      const reg = await redeemBootstrapKey(db, bootstrapKey);
      sims[i] = new SimRunner({ name, token: reg.token, url: servers[i % instances].url, stats });
    });
    const t0 = performance.now();
    await pool(sims, 50, (s) => s.connect());
    const connectS = (performance.now() - t0) / 1000;
    for (;;) {
      const pending = (await call(0, 'GET', '/api/v1/packs?status=pending')).body.packs;
      if (pending.length > 0) {
        for (const p of pending) await call(0, 'POST', `/api/v1/packs/${p.id}/trust`, { comment: 'load bench' });
        break;
      }
      await sleep(100);
    }

    // Memory of each instance, sampled every second.
    const peak = servers.map((s) => rssOf(s.child.pid));
    const sampler = setInterval(() => {
      servers.forEach((s, i) => {
        peak[i] = Math.max(peak[i], rssOf(s.child.pid));
      });
    }, 1000);

    // The steady stream: an open-loop generator at `rate` runs/s, round robin over instances and runners.
    const sent = new Map(); // run id → performance.now() when its request was sent
    let k = 0;
    let inFlight = 0;
    let refused = 0;
    const streamStart = performance.now();
    const streamEnd = streamStart + seconds * 1000;
    const fire = async (n) => {
      inFlight++;
      const t = performance.now();
      try {
        const r = await call(n, 'POST', '/api/v1/runs', {
          runner: names[n % nRunners],
          action: 'loadsim.noop',
          args: { n },
          reason: 'load bench',
        });
        if (r.status === 201) sent.set(r.body.id, t);
        else {
          refused++;
          stats.errors.push(`POST /runs: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
        }
      } catch (e) {
        refused++;
        stats.errors.push(`POST /runs: ${e.message}`);
      } finally {
        inFlight--;
      }
    };
    const requests = [];
    while (performance.now() < streamEnd) {
      const due = Math.floor(((performance.now() - streamStart) / 1000) * rate);
      while (k < due) {
        if (inFlight >= 512) {
          stats.errors.push('the load generator fell behind (512 requests in flight)');
          break;
        }
        requests.push(fire(k++));
      }
      await sleep(5);
    }
    await Promise.all(requests);
    // Drain: every accepted run must be acknowledged (final on the server).
    const drainEnd = performance.now() + 120_000;
    while (performance.now() < drainEnd && [...sent.keys()].some((id) => !stats.acked.has(id))) await sleep(50);
    clearInterval(sampler);
    const lastAck = Math.max(...[...sent.keys()].map((id) => stats.acked.get(id) ?? 0));
    const unfinished = [...sent.keys()].filter((id) => !stats.acked.has(id)).length;
    if (unfinished > 0) stats.errors.push(`${unfinished} runs never finished`);
    if (stats.duplicates > 0) stats.errors.push(`${stats.duplicates} duplicate run_action deliveries`);

    const dispatch = [];
    const e2e = [];
    for (const [id, t] of sent) {
      const rx = stats.received.get(id);
      const ack = stats.acked.get(id);
      if (rx !== undefined) dispatch.push(rx - t);
      if (ack !== undefined) e2e.push(ack - t);
    }
    // Every run final exactly once in the database, and the audit chain (with every runner mirror) verifies.
    const results = await db.kysely
      .selectFrom('audit_events')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('kind', '=', 'run.result')
      .executeTakeFirstOrThrow();
    if (Number(results.n) !== sent.size) stats.errors.push(`${results.n} run.result events for ${sent.size} runs`);
    const notSuccess = await db.kysely
      .selectFrom('runs')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('status', '!=', 'success')
      .executeTakeFirstOrThrow();
    if (Number(notSuccess.n) > 0) stats.errors.push(`${notSuccess.n} runs not successful`);
    await db.close();
    const v0 = performance.now();
    const verify = (await call(0, 'GET', '/api/v1/audit/verify')).body;
    const verifyS = (performance.now() - v0) / 1000;
    const mirrorsOk = verify.runners?.filter((r) => r.ok).length ?? 0;
    if (verify.ok !== true) stats.errors.push(`audit verify: ${JSON.stringify(verify).slice(0, 300)}`);
    for (const s of sims) s.stop();
    await sleep(500);
    for (const e of stats.errors.slice(0, 5)) process.stdout.write(`  error (${label}): ${e}\n`);
    const windowS = (lastAck - streamStart) / 1000;
    return {
      label,
      rows: [
        {
          name: `${label}: simulated runners connected`,
          value: sims.filter((s) => s.connected || s.stopped).length,
          unit: 'runners',
        },
        { name: `${label}: connect all runners (hello → welcome)`, value: connectS, unit: 's' },
        { name: `${label}: runs requested (steady stream)`, value: sent.size + refused, unit: `runs in ${seconds} s` },
        { name: `${label}: runs completed per second`, value: sent.size / windowS, unit: 'runs/s' },
        { name: `${label}: dispatch latency p50`, value: pct(dispatch, 50), unit: 'ms' },
        { name: `${label}: dispatch latency p99`, value: pct(dispatch, 99), unit: 'ms' },
        { name: `${label}: request → result acknowledged p50`, value: pct(e2e, 50), unit: 'ms' },
        { name: `${label}: request → result acknowledged p99`, value: pct(e2e, 99), unit: 'ms' },
        {
          name: `${label}: server memory, peak RSS (largest instance)`,
          value: Math.max(...peak) / 1048576,
          unit: 'MiB',
        },
        { name: `${label}: errors`, value: stats.errors.length, unit: 'count (must be 0)' },
        {
          name: `${label}: audit chain verification`,
          value: verify.ok === true ? `ok, ${verify.count} events, ${mirrorsOk} runner mirrors` : 'FAILED',
          unit: `${verifyS.toFixed(1)} s`,
        },
      ],
      rate: sent.size / windowS,
      errors: stats.errors.length,
    };
  } finally {
    for (const s of sims) s?.stop();
    for (const s of servers) s.child.kill('SIGTERM');
    await sleep(1000);
    for (const s of servers) if (s.child.exitCode === null) s.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function bench({ quick }) {
  const seconds = Number(process.env.AIRLOCK_LOAD_SECONDS ?? (quick ? 30 : 600));
  const nRunners = Number(process.env.AIRLOCK_LOAD_RUNNERS ?? 1000);
  const rate = Number(process.env.AIRLOCK_LOAD_RATE ?? 10);
  const sqliteDir = mkdtempSync(join(tmpdir(), 'airlock-bench-load-db-'));
  const rows = [];
  const notes = [];
  let sqlite;
  let postgres;
  try {
    sqlite = await scenario({
      label: 'SQLite, 1 instance',
      instances: 1,
      database: join(sqliteDir, 'airlock.db'),
      seconds,
      nRunners,
      rate,
    });
    rows.push(...sqlite.rows);
  } finally {
    rmSync(sqliteDir, { recursive: true, force: true });
  }
  const pg = await startPgCluster();
  try {
    const { default: pgmod } = await import('pg');
    const c = new pgmod.Client({ connectionString: pg.url });
    await c.connect();
    await c.query('CREATE DATABASE airlock_load');
    await c.end();
    postgres = await scenario({
      label: 'PostgreSQL, 3 instances',
      instances: 3,
      database: pg.url.replace(/\/postgres$/, '/airlock_load'),
      seconds,
      nRunners,
      rate,
    });
    rows.push(...postgres.rows);
  } finally {
    pg.stop();
  }
  notes.push(
    `${nRunners} simulated runners (bench/load-runner.mjs: real WebSockets and wire protocol, synthetic results with real audit chains), ` +
      `an open-loop stream of ${rate} runs/s for ${seconds} s per setup, requests round robin over the instances.`,
    'Dispatch latency: request sent → run_action received by the runner; with three instances most runs are requested on an instance that does not hold the runner’s WebSocket and are routed through PostgreSQL LISTEN/NOTIFY.',
    'Errors count refused requests, failed or unfinished runs, duplicate deliveries, dropped connections and server error frames; the bench passes only with zero.',
    `The servers, the load tool and PostgreSQL share this 2-core machine; load average at the end: ${loadavg()[0].toFixed(1)}. ` +
      'When runs/s completed is below the offered rate the servers could not keep up and latencies include the backlog.',
  );
  return {
    title: 'Sustained load: 1,000 runners, one instance on SQLite and three on PostgreSQL',
    rows,
    ratio: { name: 'runs/s, three instances on PostgreSQL ÷ one on SQLite', value: postgres.rate / sqlite.rate },
    notes,
  };
}
