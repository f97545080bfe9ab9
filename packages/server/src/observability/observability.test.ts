import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { createServer } from '../app.js';
import { serverConfig } from '../config.js';
import { testDatabases } from '../testing/databases.js';
import { startTestServer } from '../testing/server.js';
import { Counter, Gauge, Histogram, Registry } from './exposition.js';
import { metricsAllowed } from './metrics-access.js';
import { readiness } from './routes.js';

/** GET with raw headers (fetch cannot send X-Forwarded-For from a test as a proxy would). */
function get(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of one sample line in an exposition, or undefined. */
function sample(text: string, line: string): number | undefined {
  const hit = text.split('\n').find((l) => l.startsWith(`${line} `));
  return hit === undefined ? undefined : Number(hit.slice(line.length + 1));
}

describe('exposition format', () => {
  test('counters, gauges and histograms render as Prometheus text 0.0.4', () => {
    const r = new Registry();
    const c = r.register(new Counter('x_total', 'a count\nwith newline'));
    const g = r.register(new Gauge('x_open', 'open things'));
    const h = r.register(new Histogram('x_seconds', 'latency', [0.1, 1]));
    c.inc({ kind: 'a"b\\c' });
    c.inc({ kind: 'a"b\\c' }, 2);
    g.replace([{ labels: { status: 'queued' }, value: 3 }]);
    h.observe(0.05);
    h.observe(0.5);
    h.observe(7);
    assert.equal(
      r.render(),
      [
        '# HELP x_total a count\\nwith newline',
        '# TYPE x_total counter',
        'x_total{kind="a\\"b\\\\c"} 3',
        '# HELP x_open open things',
        '# TYPE x_open gauge',
        'x_open{status="queued"} 3',
        '# HELP x_seconds latency',
        '# TYPE x_seconds histogram',
        'x_seconds_bucket{le="0.1"} 1',
        'x_seconds_bucket{le="1"} 2',
        'x_seconds_bucket{le="+Inf"} 3',
        'x_seconds_sum 7.55',
        'x_seconds_count 3',
        '',
      ].join('\n'),
    );
    assert.throws(() => c.inc({}, -1), /only goes up/);
    assert.throws(() => r.register(new Counter('x_total', 'again')), /twice/);
  });
});

describe('metrics access', () => {
  test('loopback without a token; proxied or remote callers refused; a token decides when set', () => {
    assert.equal(metricsAllowed({}, '127.0.0.1', {}).ok, true);
    assert.equal(metricsAllowed({}, '::1', {}).ok, true);
    assert.equal(metricsAllowed({}, '::ffff:127.0.0.1', {}).ok, true);
    assert.equal(metricsAllowed({}, '10.0.0.5', {}).ok, false);
    assert.equal(metricsAllowed({}, '127.0.0.1', { 'x-forwarded-for': '203.0.113.9' }).ok, false);
    const token = 'm'.repeat(32);
    assert.equal(metricsAllowed({ token }, '127.0.0.1', {}).ok, false);
    assert.equal(metricsAllowed({ token }, '10.0.0.5', { authorization: `Bearer ${token}` }).ok, true);
    assert.equal(metricsAllowed({ token }, '10.0.0.5', { authorization: `Bearer ${token}x` }).ok, false);
  });
});

for (const { name, create } of testDatabases()) {
  describe(`observability endpoints (${name})`, () => {
    test('healthz, readyz and metrics of a live server; request ids echoed', async () => {
      const t = await create();
      const srv = await startTestServer(t.url);
      after(async () => {
        await srv.stop();
        await t.drop();
      });
      const health = await get(`${srv.url}/healthz`);
      assert.equal(health.status, 200);
      assert.equal(JSON.parse(health.text).status, 'ok');
      const ready = await get(`${srv.url}/readyz`);
      assert.equal(ready.status, 200, ready.text);
      assert.deepEqual(
        { status: JSON.parse(ready.text).status, migrations: JSON.parse(ready.text).migrations },
        { status: 'ready', migrations: 'current' },
      );

      // A sane caller id is adopted and echoed; anything else is replaced by a fresh UUID.
      const mine = await get(`${srv.url}/healthz`, { 'x-request-id': 'trace-0123456789abcdef' });
      assert.equal(mine.headers['x-request-id'], 'trace-0123456789abcdef');
      const odd = await get(`${srv.url}/healthz`, { 'x-request-id': 'has spaces and "quotes"' });
      assert.match(String(odd.headers['x-request-id']), /^[0-9a-f-]{36}$/);

      // Real events through the server's audit log feed the counters.
      const ctx = srv.server.ctx;
      const actor = { type: 'user', id: 'u1' };
      await ctx.audit.record({ orgId: null, kind: 'run.requested', actor, data: { decision: 'allow' } });
      await ctx.audit.record({ orgId: null, kind: 'run.requested', actor, data: { decision: 'require_approval' } });
      await ctx.audit.record({ orgId: null, kind: 'run.denied', actor, status: 'validation_failed' });
      await ctx.audit.record({ orgId: null, kind: 'run.result', actor, status: 'success', durationMs: 1500 });

      const m = await get(`${srv.url}/metrics`);
      assert.equal(m.status, 200, m.text);
      assert.match(String(m.headers['content-type']), /^text\/plain; version=0\.0\.4/);
      assert.equal(sample(m.text, 'airlock_policy_decisions_total{decision="allow"}'), 1);
      assert.equal(sample(m.text, 'airlock_policy_decisions_total{decision="require_approval"}'), 1);
      assert.equal(sample(m.text, 'airlock_policy_decisions_total{decision="deny"}'), 1);
      assert.equal(sample(m.text, 'airlock_runs_finished_total{status="success"}'), 1);
      assert.equal(sample(m.text, 'airlock_run_duration_seconds_bucket{le="2.5"}'), 1);
      assert.equal(sample(m.text, 'airlock_run_duration_seconds_bucket{le="1"}'), 0);
      assert.equal(sample(m.text, 'airlock_runs{status="queued"}'), 0);
      assert.equal(sample(m.text, 'airlock_runners{status="online"}'), 0);
      assert.equal(sample(m.text, 'airlock_sandboxes{state="running"}'), 0);
      assert.equal(sample(m.text, 'airlock_sandboxes{state="creating"}'), 0);
      assert.equal(sample(m.text, 'airlock_metrics_scrape_errors_total'), undefined);
      assert.ok((sample(m.text, 'airlock_audit_events_total{kind="run.result"}') ?? 0) >= 1);
      // Routes are labelled by pattern, and the earlier requests were counted.
      assert.ok(
        (sample(m.text, 'airlock_http_request_duration_seconds_count{code="2xx",method="GET",route="/healthz"}') ??
          0) >= 3,
      );
      assert.match(m.text, /airlock_build_info\{version="[^"]+"\} 1/);

      const proxied = await get(`${srv.url}/metrics`, { 'x-forwarded-for': '203.0.113.9' });
      assert.equal(proxied.status, 403);
      assert.equal(JSON.parse(proxied.text).error.code, 'forbidden');
    });

    test('readyz reports an unreachable database', async () => {
      const t = await create();
      const db = await t.open();
      assert.equal((await readiness(db)).ready, true);
      await db.close();
      const r = await readiness(db);
      assert.equal(r.ready, false);
      assert.match(r.database, /^unreachable/);
      await t.drop();
    });
  });
}

describe('metrics token', () => {
  test('with AIRLOCK_METRICS_TOKEN set, /metrics needs it even on loopback', async () => {
    const home = mkdtempSync(join(tmpdir(), 'airlock-metrics-'));
    const token = 'scrape-0123456789-abcdef';
    const server = await createServer(
      serverConfig(
        { listen: '127.0.0.1:0', home, database: join(home, 'airlock.db'), logLevel: 'silent' },
        { AIRLOCK_METRICS_TOKEN: token },
      ),
    );
    after(async () => {
      await server.close();
      rmSync(home, { recursive: true, force: true });
    });
    const url = await server.listen();
    assert.equal((await get(`${url}/metrics`)).status, 401);
    const ok = await get(`${url}/metrics`, { authorization: `Bearer ${token}` });
    assert.equal(ok.status, 200);
    assert.match(ok.text, /# TYPE airlock_runs gauge/);
  });
});
