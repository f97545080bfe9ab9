// Scale-out with real processes: three `airlock server` instances on one PostgreSQL
// database behind a loopback TCP balancer, six `airlock runner connect` processes spread
// over them, runs requested through every instance, and one instance killed with SIGKILL
// while runs are in flight. Its runners reconnect through the balancer to the others; every
// accepted run reaches a final status exactly once (one attempt in the runner's security
// log, one `run.result` in the server's audit log), and the audit chain verifies.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openDatabase } from '@airlock/server';
import { apiClient, mintTestKey, ownerId, testDatabases } from '@airlock/server/testing';
import { type AirlockProcess, freePort, repoRoot, spawnAirlock, until } from './testing/processes.js';
import { TcpProxy } from './testing/tcp-proxy.js';

const FINAL = ['success', 'failure', 'validation_failed', 'error', 'timeout', 'cancelled'];
const RUNNERS = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6'];

describe('three server instances on one PostgreSQL, one killed mid-run', () => {
  const pgdb = testDatabases().find((d) => d.name === 'postgres')!;
  let t: Awaited<ReturnType<typeof pgdb.create>>;
  let dir: string;
  const ports: number[] = [];
  const servers: AirlockProcess[] = [];
  const runners = new Map<string, AirlockProcess>();
  const apis: ReturnType<typeof apiClient>[] = [];
  let proxy: TcpProxy;

  const startServer = async (i: number): Promise<void> => {
    servers[i] = spawnAirlock(['server', '--listen', `127.0.0.1:${ports[i]}`, '--database', t.url], {
      AIRLOCK_HOME: join(dir, `server-${i}`),
    });
    await servers[i]!.waitFor(/listening on/);
  };
  const runnerEvents = (rn: string): { id: string; status: string }[] => {
    const text = readFileSync(join(dir, rn, 'events.jsonl'), 'utf8').trim();
    return text === '' ? [] : text.split('\n').map((l) => JSON.parse(l) as { id: string; status: string });
  };
  const instanceOf = async (): Promise<Map<string, string | null>> => {
    const db = await openDatabase(t.url);
    try {
      const rows = await db.kysely.selectFrom('runners').select(['name', 'instance_id', 'status']).execute();
      return new Map(rows.map((r) => [r.name, r.status === 'online' ? (r.instance_id ?? null) : null]));
    } finally {
      await db.close();
    }
  };

  before(async () => {
    t = await pgdb.create();
    dir = mkdtempSync(join(tmpdir(), 'airlock-cluster-'));
    for (let i = 0; i < 3; i++) ports.push(await freePort());
    // The first instance migrates the database; the others start on a migrated one.
    await startServer(0);
    await Promise.all([startServer(1), startServer(2)]);
    const db = await openDatabase(t.url);
    const org = (await db.kysely.selectFrom('orgs').select('id').executeTakeFirstOrThrow()).id;
    const key = await mintTestKey(db, org, await ownerId(db, org), [
      'runs:read',
      'runs:write',
      'runners:read',
      'runners:write',
      'packs:read',
      'packs:trust',
      'audit:read',
    ]);
    await db.close();
    for (const p of ports) apis.push(apiClient(`http://127.0.0.1:${p}`, key));
    proxy = await TcpProxy.start([...ports]);
    for (const rn of RUNNERS) {
      const home = join(dir, rn);
      mkdirSync(home, { recursive: true });
      writeFileSync(
        join(home, 'runner.yaml'),
        `name: ${rn}\npacks: [${JSON.stringify(join(repoRoot, 'packs', 'showcase'))}]\nlog: ${JSON.stringify(join(home, 'events.jsonl'))}\n`,
      );
      const created = await apis[0]!('POST', '/api/v1/runners', { name: rn, labels: {} });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const p = spawnAirlock(
        [
          'runner',
          'connect',
          '--config',
          join(home, 'runner.yaml'),
          '--server',
          proxy.url,
          '--bootstrap-key',
          created.body.bootstrap_key,
        ],
        { AIRLOCK_HOME: home },
      );
      runners.set(rn, p);
      await p.waitFor(/connected to the control plane/);
    }
    const packs = (await apis[1]!('GET', '/api/v1/packs')).body.packs;
    assert.equal((await apis[1]!('POST', `/api/v1/packs/${packs[0].id}/trust`, { comment: 'cluster' })).status, 200);
  });

  after(async () => {
    for (const p of runners.values()) await p.kill('SIGKILL');
    for (const s of servers) await s?.kill('SIGKILL');
    await proxy?.stop();
    await t?.drop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  test('runner sessions are spread over the three instances', async () => {
    const where = await instanceOf();
    const instances = new Set([...where.values()]);
    assert.equal(where.size, RUNNERS.length);
    assert.ok(!instances.has(null), 'every runner online');
    assert.equal(instances.size, 3, `sessions on every instance: ${JSON.stringify([...where])}`);
  });

  test('dispatch through every instance; SIGKILL one mid-run; every accepted run ends once', async () => {
    const accepted: string[] = [];
    const request = async (api: ReturnType<typeof apiClient>, runner: string, args: Record<string, unknown>) => {
      const r = await api('POST', '/api/v1/runs', { runner, action: 'showcase.count', args, reason: 'scale-out' });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      accepted.push(r.body.id as string);
      return r.body.id as string;
    };
    // Every instance asks every runner: most land on an instance that does not hold the socket.
    for (const api of apis) for (const rn of RUNNERS) await request(api, rn, { n: 6, delay_ms: 1000 });
    // Kill one instance (it holds two of the six runner sessions) while those runs are in flight.
    const before = new Set((await instanceOf()).values());
    assert.equal(before.size, 3);
    const held = await until(
      async () => {
        const running = (await apis[0]!('GET', '/api/v1/runs?status=running&limit=500')).body.runs.length;
        return running >= 1 ? running : undefined;
      },
      60_000,
      'runs in flight',
    );
    assert.ok(held >= 1);
    const victim = 1;
    servers[victim]!.child.kill('SIGKILL');
    await until(() => servers[victim]!.child.exitCode !== null || servers[victim]!.child.signalCode !== null, 5000);
    const survivors = apis.filter((_, i) => i !== victim);
    // More work while the victim's runners are reconnecting: queued until they are back.
    for (const api of survivors) for (const rn of RUNNERS) await request(api, rn, { n: 2, delay_ms: 100 });

    const finals = new Map<string, string>();
    await until(
      async () => {
        for (const id of accepted) {
          if (finals.has(id)) continue;
          const r = (await survivors[0]!('GET', `/api/v1/runs/${id}`)).body;
          if (FINAL.includes(r.status)) finals.set(id, r.status);
        }
        return finals.size === accepted.length;
      },
      90_000,
      'every accepted run to finish',
    );
    assert.deepEqual(
      [...new Set(finals.values())],
      ['success'],
      'no run lost or failed by the instance crash (the runners kept running and re-sent their results)',
    );

    // The victim's runners reconnected to the survivors.
    const after = await until(
      async () => {
        const w = await instanceOf();
        return [...w.values()].every((v) => v !== null) ? w : undefined;
      },
      30_000,
      'every runner back online',
    );
    assert.equal(new Set([...after.values()]).size, 2, 'sessions now on the two survivors only');

    // Exactly once: one attempt per run in the runners' logs, one run.result per run on the server.
    const attempts = new Map<string, number>();
    for (const rn of RUNNERS) for (const e of runnerEvents(rn)) attempts.set(e.id, (attempts.get(e.id) ?? 0) + 1);
    for (const id of accepted) assert.equal(attempts.get(id), 1, `run ${id}: exactly one execution`);
    const db = await openDatabase(t.url);
    try {
      const results = await db.kysely
        .selectFrom('audit_events')
        .select(['id'])
        .where('kind', '=', 'run.result')
        .execute();
      const perRun = new Map<string, number>();
      for (const r of results) perRun.set(r.id, (perRun.get(r.id) ?? 0) + 1);
      for (const id of accepted) assert.equal(perRun.get(id), 1, `run ${id}: exactly one run.result event`);
    } finally {
      await db.close();
    }
    const verify = (await survivors[0]!('GET', '/api/v1/audit/verify')).body;
    assert.equal(verify.ok, true, JSON.stringify(verify));
    assert.ok(
      verify.runners.every((r: { ok: boolean }) => r.ok),
      JSON.stringify(verify.runners),
    );
  });
});
