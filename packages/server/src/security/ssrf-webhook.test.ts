// OWASP API7 (server-side request forgery) through the approval webhook, whose URL an
// organisation admin sets: by default the server refuses loopback, private, link-local
// (cloud metadata), carrier-grade NAT, multicast and reserved targets, whether named as an IP
// in any spelling, reached through DNS, or through a redirect; only the operator can opt in
// ranges (AIRLOCK_WEBHOOK_ALLOW). Real receivers on loopback addresses observe what arrives.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AirlockError } from '@airlock/core';
import { ROLE_PERMISSIONS } from '../auth/permissions.js';
import { serverConfig } from '../config.js';
import { deliverWebhook, notify, WebhookTargets } from '../policy/webhook.js';
import { type TestDb, testDatabases } from '../testing/databases.js';
import { mintTestKey, ownerId } from '../testing/keys.js';
import { startTestServer, type TestServer } from '../testing/server.js';
import { requestFrom } from './support.js';

/** A receiver on a loopback address that records what reaches it. */
async function receiver(
  host: string,
  answer: (res: import('node:http').ServerResponse) => void = (res) => res.end('ok'),
): Promise<{ server: Server; port: number; hits: string[]; url: string }> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    req.resume();
    answer(res);
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as AddressInfo).port;
  return { server, port, hits, url: `http://${host}:${port}/hook` };
}

const close = (s: Server) => new Promise<void>((r) => s.close(() => r()));

describe('webhook target policy', () => {
  const byDefault = new WebhookTargets();

  test('refuses loopback, private, link-local, metadata, CGNAT, reserved and mapped forms', () => {
    for (const ip of [
      '127.0.0.1',
      '127.255.255.254',
      '0.0.0.0',
      '10.1.2.3',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '198.18.0.1',
      '224.0.0.1',
      '255.255.255.255',
      '::',
      '::1',
      'fe80::1',
      'fd00:ec2::254',
      'fc00::1',
      'ff02::1',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '::ffff:a9fe:a9fe',
      '64:ff9b::7f00:1',
      '2002:7f00:1::',
    ]) {
      assert.notEqual(byDefault.refusal(ip), undefined, ip);
    }
  });

  test('allows public addresses, and what the operator opts in', () => {
    for (const ip of ['93.184.216.34', '1.1.1.1', '172.32.0.1', '2606:4700::1111']) {
      assert.equal(byDefault.refusal(ip), undefined, ip);
    }
    const opted = new WebhookTargets(['10.20.0.0/16', '::1', '127.0.0.1/32']);
    assert.equal(opted.refusal('10.20.3.4'), undefined);
    assert.equal(opted.refusal('::1'), undefined);
    assert.equal(opted.refusal('127.0.0.1'), undefined);
    assert.notEqual(opted.refusal('10.21.0.1'), undefined, 'only the opted-in range');
    assert.notEqual(opted.refusal('127.0.0.2'), undefined);
    assert.throws(() => new WebhookTargets(['10.0.0.0/33']));
    assert.throws(() => new WebhookTargets(['example.com']));
  });

  test('AIRLOCK_WEBHOOK_ALLOW is parsed and validated at start', () => {
    const ok = serverConfig({ home: '/tmp/x' }, { AIRLOCK_WEBHOOK_ALLOW: '10.0.0.0/8, fd00::/8' });
    assert.deepEqual(ok.webhookAllow, ['10.0.0.0/8', 'fd00::/8']);
    assert.equal(serverConfig({ home: '/tmp/x' }, {}).webhookAllow, undefined, 'nothing opted in by default');
    assert.throws(
      () => serverConfig({ home: '/tmp/x' }, { AIRLOCK_WEBHOOK_ALLOW: '10.0.0.0/8,intranet' }),
      (e: unknown) => e instanceof AirlockError && /AIRLOCK_WEBHOOK_ALLOW/.test(e.message),
    );
  });
});

describe('webhook delivery (real receivers on loopback)', () => {
  let a: Awaited<ReturnType<typeof receiver>>;
  let b: Awaited<ReturnType<typeof receiver>>;
  before(async () => {
    b = await receiver('127.0.0.2');
    // A receives and redirects inward, to B.
    a = await receiver('127.0.0.1', (res) => {
      res.writeHead(307, { location: b.url }).end();
    });
  });
  after(async () => {
    await close(a.server);
    await close(b.server);
  });

  const post = (targets: WebhookTargets, url: string) => deliverWebhook(targets, url, {}, '{}', 2000);

  test('loopback by IP in any spelling, by name, or metadata: refused without a request', async () => {
    const targets = new WebhookTargets();
    for (const url of [
      a.url,
      `http://2130706433:${a.port}/hook`,
      `http://0x7f.1:${a.port}/hook`,
      `http://017700000001:${a.port}/hook`,
      `http://[::ffff:127.0.0.1]:${a.port}/hook`,
      `http://localhost:${a.port}/hook`,
      `http://127.0.0.1.:${a.port}/hook`,
      'http://169.254.169.254/latest/meta-data/',
      'http://[fd00:ec2::254]/latest/meta-data/',
      `ftp://127.0.0.1:${a.port}/`,
      `http://user:pw@127.0.0.1:${a.port}/`,
    ]) {
      const d = await post(targets, url);
      assert.equal(d.kind, 'refused', `${url}: ${JSON.stringify(d)}`);
    }
    assert.deepEqual(a.hits, []);
  });

  test('an opted-in address is delivered to; a redirect from it is never followed inward', async () => {
    const d = await post(new WebhookTargets(['127.0.0.1/32', '127.0.0.2/32']), a.url);
    assert.equal(d.kind, 'failed');
    assert.match((d as { reason: string }).reason, /redirects are not followed/);
    assert.equal(a.hits.length, 1);
    assert.deepEqual(b.hits, [], 'the redirect target was never contacted');
    const direct = await post(new WebhookTargets(['127.0.0.2/32']), b.url);
    assert.deepEqual(direct, { kind: 'delivered', status: 200 });
    assert.equal(b.hits.length, 1);
  });
});

for (const { name, create } of testDatabases()) {
  describe(`approval webhook SSRF guard in the server (${name})`, () => {
    let t: TestDb;
    let guarded: TestServer;
    let hook: Awaited<ReturnType<typeof receiver>>;
    before(async () => {
      t = await create();
      hook = await receiver('127.0.0.1');
      // The default configuration: nothing opted in.
      guarded = await startTestServer(t.url, undefined, { webhookAllow: [] });
    });
    after(async () => {
      await guarded?.stop();
      await close(hook.server);
      await t?.drop();
    });

    test('an organisation admin pointing the webhook at loopback reaches nothing unless the operator allows it', async () => {
      const { db } = guarded.server.ctx;
      const org = guarded.server.bootstrap.orgId;
      const key = await mintTestKey(db, org, await ownerId(db, org), ROLE_PERMISSIONS.owner);
      const put = (webhook_url: string) =>
        requestFrom(guarded.url, 'PUT', '/api/v1/policy/settings', {
          headers: { authorization: `Bearer ${key}` },
          body: { webhook_url },
        });
      // Refused when saved, naming the field and the reason (loopback literal, then credentials).
      const set = await put(hook.url);
      assert.equal(set.status, 400, set.text);
      assert.match(set.text, /"field":"webhook_url"/);
      assert.match(set.text, /loopback, private, link-local or reserved/);
      const creds = await put('https://user:pw@example.com/hook');
      assert.equal(creds.status, 400, creds.text);
      assert.match(creds.text, /credentials in the URL/);
      for (const inward of ['http://169.254.169.254/latest', 'http://[::ffff:10.0.0.1]/', 'http://localhost:9/'])
        assert.equal((await put(inward)).status, 400, `${inward} refused when saved`);
      // A URL stored before this check existed (or resolving inward later) is still refused at delivery.
      const row = await requestFrom(guarded.url, 'PUT', '/api/v1/policy/settings', {
        headers: { authorization: `Bearer ${key}` },
        body: { approval_ttl_s: 600 },
      });
      assert.equal(row.status, 200, row.text);
      await db.kysely.updateTable('policy_settings').set({ webhook_url: hook.url }).where('org_id', '=', org).execute();
      await notify(guarded.server.ctx, org, 'approval.requested', { run_id: 'x' });
      await sleep(500);
      assert.deepEqual(hook.hits, [], 'refused by default');
      // The same server context with the operator's opt-in for loopback.
      const ctx = guarded.server.ctx;
      await notify({ ...ctx, config: { ...ctx.config, webhookAllow: ['127.0.0.1/32'] } }, org, 'approval.requested', {
        run_id: 'x',
      });
      for (let i = 0; i < 50 && hook.hits.length === 0; i++) await sleep(50);
      assert.deepEqual(hook.hits, ['POST /hook'], 'delivered where the operator opted in');
    });
  });
}
