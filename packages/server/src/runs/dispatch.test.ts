import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defaultRunnerConfig, type RunningRunner, redeemBootstrapKey, startRunner } from '@airlock/runner';
import { testDatabases } from '../testing/databases.js';
import { apiClient, mintTestKey, ownerId } from '../testing/keys.js';
import { startTestServer, type TestServer } from '../testing/server.js';

const repo = resolve(fileURLToPath(import.meta.url), '../../../../..');
const waitFor = async (fn: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail('condition not met in time');
};

for (const { name, create } of testDatabases()) {
  describe(`dispatch through the control plane (${name})`, () => {
    let t: Awaited<ReturnType<typeof create>>;
    let srv: TestServer;
    let api: ReturnType<typeof apiClient>;
    let runner: RunningRunner;
    let runnerHome: string;
    let runnerId: string;
    let token: string;

    before(async () => {
      t = await create();
      srv = await startTestServer(t.url);
      const db = srv.server.ctx.db;
      const key = await mintTestKey(db, srv.server.bootstrap.orgId, await ownerId(db, srv.server.bootstrap.orgId), [
        'runs:read',
        'runs:write',
        'runners:read',
        'runners:write',
        'packs:read',
        'packs:trust',
        'audit:read',
      ]);
      api = apiClient(srv.url, key);
      runnerHome = mkdtempSync(join(tmpdir(), 'airlock-rh-'));
    });
    after(async () => {
      runner?.stop();
      await srv.stop();
      await t.drop();
      rmSync(runnerHome, { recursive: true, force: true });
    });

    test('create a runner, register it, and see it online with its packs pending trust', async () => {
      const created = await api('POST', '/api/v1/runners', { name: 'web-1', labels: { env: 'test' } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.match(created.body.bootstrap_key, /^alb_/);
      assert.match(
        created.body.command,
        /airlock runner connect --server http:\/\/127\.0\.0\.1:\d+ --bootstrap-key alb_/,
      );
      const reg = await redeemBootstrapKey(srv.url, created.body.bootstrap_key);
      token = reg.token;
      runnerId = reg.runnerId;
      await assert.rejects(redeemBootstrapKey(srv.url, created.body.bootstrap_key), /refused the bootstrap key/);
      const config = {
        ...defaultRunnerConfig({}),
        name: 'web-1',
        packDirs: [join(repo, 'packs', 'showcase')],
        logPath: join(runnerHome, 'events.jsonl'),
      };
      runner = startRunner({ config, serverUrl: srv.url, token, backoff: { minMs: 50, maxMs: 500 } });
      await waitFor(async () => (await api('GET', `/api/v1/runners/${runnerId}`)).body.online === true);
      const packs = await api('GET', '/api/v1/packs');
      assert.equal(packs.body.packs.length, 1);
      assert.equal(packs.body.packs[0].status, 'pending');
    });

    test('an untrusted pack blocks dispatch; trusting it (with a reviewable file diff) allows it', async () => {
      const blocked = await api('POST', '/api/v1/runs', {
        runner: 'web-1',
        action: 'showcase.echo',
        args: { message: 'hi' },
        reason: 'test',
      });
      assert.equal(blocked.status, 409);
      assert.equal(blocked.body.error.code, 'pack_untrusted');
      const pack = (await api('GET', '/api/v1/packs')).body.packs[0];
      await waitFor(async () =>
        (await api('GET', `/api/v1/packs/${pack.id}`)).body.files.some((f: { diff: string | null }) => f.diff !== null),
      );
      const detail = await api('GET', `/api/v1/packs/${pack.id}`);
      assert.ok(detail.body.files.every((f: { change: string }) => f.change === 'added'));
      assert.match(detail.body.files.find((f: { path: string }) => f.path === 'pack.yaml').diff, /\+ name: showcase/);
      const trusted = await api('POST', `/api/v1/packs/${pack.id}/trust`, { comment: 'reviewed' });
      assert.equal(trusted.body.status, 'trusted');
    });

    test('dispatch, stream output, final result exactly once, mirrored audit', async () => {
      const r = await api('POST', '/api/v1/runs', {
        runner: 'web-1',
        action: 'showcase.echo',
        args: { message: '$(id); rm -rf /' },
        reason: 'smoke',
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      await waitFor(async () => (await api('GET', `/api/v1/runs/${r.body.id}`)).body.status === 'success');
      const out = await api('GET', `/api/v1/runs/${r.body.id}/output`);
      assert.deepEqual(
        out.body.lines.map((l: { line: string }) => l.line),
        ['$(id); rm -rf /'],
      );
      const run = (await api('GET', `/api/v1/runs/${r.body.id}`)).body;
      assert.match(run.audit_hash, /^sha256:/);
      assert.equal(run.requested_by.type, 'api_key');
      await waitFor(() => runner.client.outbox.entries().length === 0);
    });

    test('SSE stream delivers output and the final status', async () => {
      const r = await api('POST', '/api/v1/runs', {
        runner: 'web-1',
        action: 'showcase.count',
        args: { n: 3, delay_ms: 100 },
        reason: 'sse',
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const res = await fetch(new URL(`/api/v1/runs/${r.body.id}/stream`, srv.url), {
        headers: { authorization: await keyHeader() },
      });
      const text = await res.text();
      assert.match(text, /event: output/);
      assert.match(text, /event: end\ndata: \{"status":"success"\}/);
    });

    test('cancel stops a running action', async () => {
      const r = await api('POST', '/api/v1/runs', {
        runner: 'web-1',
        action: 'showcase.sleep',
        args: { seconds: 60 },
        reason: 'to cancel',
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      await waitFor(async () => (await api('GET', `/api/v1/runs/${r.body.id}`)).body.status === 'running');
      const c = await api('POST', `/api/v1/runs/${r.body.id}/cancel`, { reason: 'enough' });
      assert.equal(c.status, 202);
      await waitFor(async () => (await api('GET', `/api/v1/runs/${r.body.id}`)).body.status === 'cancelled');
    });

    test('bad requests name the field', async () => {
      const bad = await api('POST', '/api/v1/runs', { runner: 'web-1', action: 'Not An Action', reason: '' });
      assert.equal(bad.status, 400);
      const fields = bad.body.error.fields.map((f: { field: string }) => f.field).sort();
      assert.deepEqual(fields, ['body.action', 'body.reason']);
      const unknown = await api('POST', '/api/v1/runs', { runner: 'web-1', action: 'showcase.nope', reason: 'x' });
      assert.equal(unknown.status, 400);
      assert.equal(unknown.body.error.fields[0].field, 'body.action');
    });

    test('a revoked runner is disconnected at once and its token refused', async () => {
      const rev = await api('POST', `/api/v1/runners/${runnerId}/revoke`, { reason: 'test' });
      assert.equal(rev.status, 200);
      const stop = await runner.stopped;
      assert.equal(stop.reason, 'revoked');
      const again = startRunner({
        config: {
          ...defaultRunnerConfig({}),
          name: 'web-1',
          packDirs: [join(repo, 'packs', 'showcase')],
          logPath: join(runnerHome, 'events.jsonl'),
        },
        serverUrl: srv.url,
        token,
        backoff: { minMs: 50, maxMs: 500 },
      });
      const s2 = await again.stopped;
      assert.equal(s2.reason, 'unauthorized');
    });

    async function keyHeader(): Promise<string> {
      const db = srv.server.ctx.db;
      return `Bearer ${await mintTestKey(db, srv.server.bootstrap.orgId, await ownerId(db, srv.server.bootstrap.orgId), ['runs:read'])}`;
    }
  });
}
