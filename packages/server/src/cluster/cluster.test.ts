// The cluster bus and several instances on one database. Postgres: notes travel between
// real LISTEN connections, one leader at a time, recovery after the listen connection is
// killed, and two in-process servers on one database routing dispatch, cancel, live output
// and revocation to the instance holding the runner's WebSocket. SQLite: the in-process bus.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defaultRunnerConfig, type RunningRunner, redeemBootstrapKey, startRunner } from '@airlock/runner';
import type { FastifyBaseLogger } from 'fastify';
import pg from 'pg';
import { openDatabase } from '../db/database.js';
import { testDatabases } from '../testing/databases.js';
import { apiClient, mintTestKey, ownerId } from '../testing/keys.js';
import { startTestServer, type TestServer } from '../testing/server.js';
import { leaderJob } from './cluster.js';
import { LocalCluster } from './local-cluster.js';
import type { ClusterNote } from './notes.js';
import { CLUSTER_APPLICATION_NAME, CLUSTER_CHANNEL, PgCluster } from './pg-cluster.js';

const repo = resolve(fileURLToPath(import.meta.url), '../../../../..');
const silent = { warn() {}, info() {}, error() {}, debug() {} } as unknown as FastifyBaseLogger;

const waitFor = async (fn: () => Promise<boolean> | boolean, ms = 15_000, what = 'condition'): Promise<void> => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${what}: not met in time`);
};

describe('cluster bus on SQLite (in process)', () => {
  test('notes reach this instance on a later tick; it is always the leader', async () => {
    const c = new LocalCluster();
    const got: ClusterNote[] = [];
    c.onNote((n) => got.push(n));
    const pending = c.publish({ t: 'status', id: 'run-1' });
    assert.equal(got.length, 0, 'not delivered synchronously');
    await pending;
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(got, [{ t: 'status', id: 'run-1', i: c.instanceId }]);
    assert.equal(c.isLeader(), true);
    let ran = 0;
    const stop = leaderJob(
      c,
      10,
      async () => ran++,
      (e) => assert.fail(String(e)),
    );
    await waitFor(() => ran >= 2);
    stop();
    await c.close();
  });
});

describe('cluster bus on Postgres (LISTEN/NOTIFY, advisory-lock leader)', () => {
  let t: Awaited<ReturnType<ReturnType<typeof testDatabases>[1]['create']>>;
  let db: Awaited<ReturnType<typeof openDatabase>>;
  before(async () => {
    t = await testDatabases()[1]!.create();
    db = await openDatabase(t.url);
  });
  after(async () => {
    await db.close();
    await t.drop();
  });

  test('notes travel to every instance; malformed payloads are ignored', async () => {
    const a = await PgCluster.open(t.url, db, silent);
    const b = await PgCluster.open(t.url, db, silent);
    const seenA: ClusterNote[] = [];
    const seenB: ClusterNote[] = [];
    a.onNote((n) => seenA.push(n));
    b.onNote((n) => seenB.push(n));
    await a.publish({ t: 'dispatch', r: 'rn-1', id: 'run-1' });
    const raw = new pg.Client({ connectionString: t.url });
    await raw.connect();
    await raw.query('select pg_notify($1, $2)', [CLUSTER_CHANNEL, '{"t":"dispatch","r":"x"}']);
    await raw.query('select pg_notify($1, $2)', [CLUSTER_CHANNEL, 'not json']);
    await raw.end();
    await b.publish({ t: 'status', id: 'run-2' });
    await waitFor(() => seenA.length === 2 && seenB.length === 2, 5000, 'both notes on both instances');
    assert.deepEqual(seenB[0], { t: 'dispatch', r: 'rn-1', id: 'run-1', i: a.instanceId });
    assert.deepEqual(seenA[1], { t: 'status', id: 'run-2', i: b.instanceId });
    await a.close();
    await b.close();
  });

  test('one leader at a time; leadership moves when the leader goes away', async () => {
    const a = await PgCluster.open(t.url, db, silent);
    const b = await PgCluster.open(t.url, db, silent);
    assert.equal(Number(a.isLeader()) + Number(b.isLeader()), 1, 'exactly one leader');
    const [leader, follower] = a.isLeader() ? [a, b] : [b, a];
    await leader.close();
    await waitFor(() => follower.isLeader(), 10_000, 'the follower to take over');
    await follower.close();
  });

  test('a killed listen connection: leadership dropped, reconnect, resync, notes flow again', async () => {
    const a = await PgCluster.open(t.url, db, silent);
    const b = await PgCluster.open(t.url, db, silent);
    const leader = a.isLeader() ? a : b;
    let resyncs = 0;
    leader.onResync(() => resyncs++);
    const seen: ClusterNote[] = [];
    leader.onNote((n) => seen.push(n));
    // Kill every LISTEN backend but our own admin connection: both instances lose theirs.
    const raw = new pg.Client({ connectionString: t.url });
    await raw.connect();
    try {
      const killed = await raw.query(
        `select pg_terminate_backend(pid) from pg_stat_activity
          where datname = current_database() and application_name = $1`,
        [CLUSTER_APPLICATION_NAME],
      );
      assert.equal(killed.rowCount, 2, 'both listen connections killed');
      await waitFor(() => resyncs === 1, 15_000, 'the listen connection to come back');
      await waitFor(() => Number(a.isLeader()) + Number(b.isLeader()) === 1, 10_000, 'a leader again');
      await (leader === a ? b : a).publish({ t: 'status', id: 'after-reconnect' });
      await waitFor(
        () => seen.some((n) => n.t === 'status' && n.id === 'after-reconnect'),
        5000,
        'a note after reconnect',
      );
    } finally {
      await raw.end();
      await a.close();
      await b.close();
    }
  });
});

describe('two server instances on one Postgres database', () => {
  let t: Awaited<ReturnType<ReturnType<typeof testDatabases>[1]['create']>>;
  let a: TestServer;
  let b: TestServer;
  let apiA: ReturnType<typeof apiClient>;
  let apiB: ReturnType<typeof apiClient>;
  let keyB: string;
  let runner: RunningRunner;
  let runnerHome: string;
  let runnerId: string;

  before(async () => {
    t = await testDatabases()[1]!.create();
    a = await startTestServer(t.url);
    b = await startTestServer(t.url);
    const db = a.server.ctx.db;
    const org = a.server.bootstrap.orgId;
    const scopes = ['runs:read', 'runs:write', 'runners:read', 'runners:write', 'packs:read', 'packs:trust'];
    apiA = apiClient(a.url, await mintTestKey(db, org, await ownerId(db, org), scopes));
    keyB = await mintTestKey(db, org, await ownerId(db, org), scopes);
    apiB = apiClient(b.url, keyB);
    runnerHome = mkdtempSync(join(tmpdir(), 'airlock-rh-'));
    const created = await apiB('POST', '/api/v1/runners', { name: 'web-1', labels: {} });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const reg = await redeemBootstrapKey(a.url, created.body.bootstrap_key);
    runnerId = reg.runnerId;
    runner = startRunner({
      config: {
        ...defaultRunnerConfig({}),
        name: 'web-1',
        packDirs: [join(repo, 'packs', 'showcase')],
        logPath: join(runnerHome, 'events.jsonl'),
      },
      serverUrl: a.url, // the runner's WebSocket lives on instance A
      token: reg.token,
      backoff: { minMs: 50, maxMs: 500 },
    });
    await waitFor(async () => (await apiB('GET', `/api/v1/runners/${runnerId}`)).body.online === true);
    const pack = (await apiB('GET', '/api/v1/packs')).body.packs[0];
    assert.equal((await apiB('POST', `/api/v1/packs/${pack.id}/trust`, { comment: 'ok' })).status, 200);
  });
  after(async () => {
    runner?.stop();
    await a.stop();
    await b.stop();
    await t.drop();
    rmSync(runnerHome, { recursive: true, force: true });
  });

  test('instance B sees the runner online although its WebSocket is on A', async () => {
    assert.equal(a.server.ctx.cluster.shared, true);
    const row = (await apiB('GET', `/api/v1/runners/${runnerId}`)).body;
    assert.equal(row.online, true);
  });

  test('a run requested on B is routed to A, and B streams its output live (SSE)', async () => {
    const r = await apiB('POST', '/api/v1/runs', {
      runner: 'web-1',
      action: 'showcase.count',
      args: { n: 3, delay_ms: 200 },
      reason: 'cluster',
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const res = await fetch(new URL(`/api/v1/runs/${r.body.id}/stream`, b.url), {
      headers: { authorization: `Bearer ${keyB}` },
    });
    const text = await res.text();
    assert.equal((text.match(/event: output/g) ?? []).length, 3, text);
    assert.match(text, /event: end\ndata: \{"status":"success"\}/);
    const viaA = (await apiA('GET', `/api/v1/runs/${r.body.id}`)).body;
    assert.equal(viaA.status, 'success');
  });

  test('a cancel requested on B reaches the runner through A', async () => {
    const r = await apiB('POST', '/api/v1/runs', {
      runner: 'web-1',
      action: 'showcase.sleep',
      args: { seconds: 60 },
      reason: 'to cancel',
    });
    assert.equal(r.status, 201);
    await waitFor(async () => (await apiB('GET', `/api/v1/runs/${r.body.id}`)).body.status === 'running');
    assert.equal((await apiB('POST', `/api/v1/runs/${r.body.id}/cancel`, { reason: 'enough' })).status, 202);
    await waitFor(async () => (await apiB('GET', `/api/v1/runs/${r.body.id}`)).body.status === 'cancelled');
  });

  test('revoking on B closes the runner session on A', async () => {
    assert.equal((await apiB('POST', `/api/v1/runners/${runnerId}/revoke`, { reason: 'test' })).status, 200);
    const stop = await runner.stopped;
    assert.equal(stop.reason, 'revoked');
  });
});
