// OWASP API2 (broken authentication) and API4 (resource consumption) on the credential
// endpoints: brute-force lockout of logins per account (from any address) and per address (for
// any account), each lifting by itself after its window; failed OAuth token requests limited
// per address and per client; runner bootstrap-key guessing and OAuth client registration
// flooding limited per address. Clients are told apart by their real source address: each
// request here comes from its own 127.0.0.x. (Per account *and* address, 10 failures: see
// accounts/sessions.test.ts "rate limit".) Small budgets and windows keep the test short.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROLE_PERMISSIONS } from '../auth/permissions.js';
import { type TestDb, testDatabases } from '../testing/databases.js';
import { mintTestKey, ownerId } from '../testing/keys.js';
import { startTestServer, type TestServer } from '../testing/server.js';
import { requestFrom } from './support.js';

// Long enough that a loaded machine still fits the failures inside one window; the unlock
// waits use the server's own retry-after.
const WINDOW_MS = 30_000;
const waitOut = (r: { headers: Record<string, unknown> }) => sleep(Number(r.headers['retry-after']) * 1000 + 300);
const budget = (limit: number) => ({ limit, windowMs: WINDOW_MS });

for (const { name, create } of testDatabases()) {
  // The cases use disjoint addresses, accounts and budgets, so they run side by side.
  describe(`brute force and rate limits on credential endpoints (${name})`, { concurrency: true }, () => {
    let t: TestDb;
    let srv: TestServer;
    let key: string;
    const password = 'correct horse battery staple';
    before(async () => {
      t = await create();
      srv = await startTestServer(t.url, undefined, {
        throttle: {
          loginPerAccount: budget(3),
          loginPerAddress: budget(3),
          tokenPerAddress: budget(5),
          tokenPerClient: budget(8),
          runnerRegisterPerAddress: budget(3),
          clientRegistrationsPerAddress: budget(3),
        },
      });
      const { db } = srv.server.ctx;
      const org = srv.server.bootstrap.orgId;
      key = await mintTestKey(db, org, await ownerId(db, org), ROLE_PERMISSIONS.owner);
      for (const username of ['victim', 'bystander']) {
        const r = await requestFrom(srv.url, 'POST', '/api/v1/users', {
          headers: { authorization: `Bearer ${key}` },
          body: { username, role: 'viewer', password },
        });
        assert.equal(r.status, 201, r.text);
      }
    });
    after(async () => {
      await srv?.stop();
      await t?.drop();
    });

    const login = (from: string, username: string, pw: string) =>
      requestFrom(srv.url, 'POST', '/api/v1/auth/login', { from, body: { username, password: pw } });

    test('per account: failures from many addresses lock the account, even for the right password, then it unlocks', async () => {
      for (let i = 0; i < 3; i++) {
        const r = await login(`127.0.1.${i + 1}`, 'victim', `guess-${i}`);
        assert.equal(r.status, 401, `guess ${i}`);
      }
      const locked = await login('127.0.1.100', 'victim', password);
      assert.equal(locked.status, 429);
      assert.equal(locked.body.error.code, 'rate_limited');
      assert.ok(Number(locked.headers['retry-after']) >= 1);
      // Another account from the same fresh address is not affected.
      assert.equal((await login('127.0.1.100', 'bystander', password)).status, 200);
      await waitOut(locked);
      assert.equal((await login('127.0.1.100', 'victim', password)).status, 200, 'unlocked after the window');
    });

    test('per address: one address spraying many accounts is locked out, other addresses are not', async () => {
      for (let i = 0; i < 3; i++) {
        const r = await login('127.0.2.1', `nobody-${i}`, 'password-spray');
        assert.equal(r.status, 401);
      }
      const blocked = await login('127.0.2.1', 'bystander', password);
      assert.equal(blocked.status, 429, 'even a correct login from the spraying address waits');
      assert.equal((await login('127.0.2.2', 'bystander', password)).status, 200);
      await waitOut(blocked);
      assert.equal((await login('127.0.2.1', 'bystander', password)).status, 200, 'unlocked after the window');
    });

    test('OAuth token endpoint: failures limited per address and per client, with an OAuth error body', async () => {
      const reg = await requestFrom(srv.url, 'POST', '/oauth/register', {
        from: '127.0.3.1',
        body: { client_name: 'guesser', redirect_uris: ['http://127.0.0.1:9/cb'] },
      });
      assert.equal(reg.status, 201, reg.text);
      const clientId = reg.body.client_id as string;
      const guess = (from: string, code: string) =>
        requestFrom(srv.url, 'POST', '/oauth/token', {
          from,
          form: {
            grant_type: 'authorization_code',
            client_id: clientId,
            code,
            code_verifier: 'v'.repeat(43),
            redirect_uri: 'http://127.0.0.1:9/cb',
          },
        });
      for (let i = 0; i < 5; i++) assert.equal((await guess('127.0.3.2', `code-${i}`)).status, 400);
      const limited = await guess('127.0.3.2', 'code-x');
      assert.equal(limited.status, 429);
      assert.equal(limited.body.error, 'invalid_request');
      assert.match(limited.body.error_description, /too many attempts/);
      assert.ok(Number(limited.headers['retry-after']) >= 1);
      // Per client: 3 more failures from other addresses spend the client's budget of 8.
      for (let i = 0; i < 3; i++) assert.equal((await guess(`127.0.3.${10 + i}`, `code-${i}`)).status, 400);
      assert.equal((await guess('127.0.3.20', 'code-y')).status, 429, 'the client is limited from any address');
      // Refresh-token guessing counts the same way.
      const refresh = await requestFrom(srv.url, 'POST', '/oauth/token', {
        from: '127.0.3.2',
        form: { grant_type: 'refresh_token', client_id: clientId, refresh_token: 'alf_guess' },
      });
      assert.equal(refresh.status, 429);
      await waitOut(limited);
      assert.equal((await guess('127.0.3.2', 'code-z')).status, 400, 'unlocked: an ordinary invalid_grant again');
    });

    test('runner bootstrap-key guessing and OAuth client registration flooding are limited per address', async () => {
      for (let i = 0; i < 3; i++) {
        const r = await requestFrom(srv.url, 'POST', '/api/v1/runners/register', {
          from: '127.0.4.1',
          body: { bootstrap_key: `alb_guess_${i}` },
        });
        assert.equal(r.status, 401);
      }
      const r = await requestFrom(srv.url, 'POST', '/api/v1/runners/register', {
        from: '127.0.4.1',
        body: { bootstrap_key: 'alb_guess_last' },
      });
      assert.equal(r.status, 429);
      assert.equal(r.body.error.code, 'rate_limited');
      const register = (from: string) =>
        requestFrom(srv.url, 'POST', '/oauth/register', {
          from,
          body: { client_name: 'flood', redirect_uris: ['https://client.example/cb'] },
        });
      for (let i = 0; i < 3; i++) assert.equal((await register('127.0.4.2')).status, 201);
      assert.equal((await register('127.0.4.2')).status, 429);
      assert.equal((await register('127.0.4.3')).status, 201, 'another address may still register');
    });
  });
}
