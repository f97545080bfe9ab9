import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type TestDb, testDatabases } from '../testing/databases.js';
import { startTestServer, type TestServer } from '../testing/server.js';
import { type Caller, call, login } from './test-support.js';

for (const { name, create } of testDatabases()) {
  describe(`API keys (${name})`, () => {
    let t: TestDb;
    let srv: TestServer;
    let owner: Caller;
    const pw = 'a-long-enough-password';
    const users: Record<string, { id: string; caller: Caller }> = {};

    before(async () => {
      t = await create();
      srv = await startTestServer(t.url);
      owner = (await login(srv.url, 'admin', srv.server.bootstrap.password ?? '')).caller;
      for (const role of ['admin', 'operator', 'viewer'] as const) {
        const r = await call(srv.url, 'POST', '/api/v1/users', {
          ...owner,
          body: { username: `${role}1`, role, password: pw },
        });
        users[role] = { id: r.body.user.id, caller: (await login(srv.url, `${role}1`, pw)).caller };
      }
    });
    after(async () => {
      await srv?.stop();
      await t?.drop();
    });

    test('create returns the token once, in the alk_<id>_<secret> format; the database keeps only its hash', async () => {
      const r = await call(srv.url, 'POST', '/api/v1/api-keys', {
        ...users['operator']!.caller,
        body: { name: 'ci', scopes: ['runs:read', 'runs:write'] },
      });
      assert.equal(r.status, 201, r.text);
      assert.match(r.body.token, /^alk_[0-9a-f]{10}_[A-Za-z0-9_-]{32}$/);
      assert.ok(r.body.token.startsWith(`${r.body.prefix}_`));
      assert.match(r.body.prefix, /^alk_[0-9a-f]{10}$/);
      assert.deepEqual(r.body.scopes, ['runs:read', 'runs:write']);
      const days = (Date.parse(r.body.expires_at) - Date.now()) / 86_400_000;
      assert.ok(days > 89.9 && days <= 90, `default expiry 90 days, got ${days}`);
      const row = await srv.server.ctx.db.kysely
        .selectFrom('api_keys')
        .selectAll()
        .where('id', '=', r.body.id)
        .executeTakeFirstOrThrow();
      assert.notEqual(row.key_hash, r.body.token);
      assert.ok(
        !JSON.stringify(row).includes(r.body.token.slice(r.body.prefix.length + 1)),
        'the secret is not stored',
      );
      const me = await call(srv.url, 'GET', '/api/v1/auth/me', { bearer: r.body.token });
      assert.equal(me.status, 200);
      assert.deepEqual(me.body.permissions, ['runs:read', 'runs:write']);
      assert.equal(me.body.csrf_token, undefined);
      const list = await call(srv.url, 'GET', '/api/v1/api-keys', { cookie: users['operator']!.caller.cookie! });
      assert.ok(list.body.keys.some((k: { id: string }) => k.id === r.body.id));
      assert.ok(!list.text.includes(r.body.token), 'listings never show the token');
      assert.ok(
        list.body.keys.find((k: { id: string }) => k.id === r.body.id).last_used_at !== null,
        'use is recorded',
      );
    });

    test('scopes wider than the caller are refused naming the scope; bad expiry is a field error', async () => {
      const op = users['operator']!.caller;
      const wide = await call(srv.url, 'POST', '/api/v1/api-keys', {
        ...op,
        body: { name: 'x', scopes: ['runs:read', 'users:write'] },
      });
      assert.equal(wide.status, 400);
      assert.equal(wide.body.error.fields[0].field, 'body.scopes.1');
      assert.match(wide.body.error.fields[0].message, /users:write/);
      const unknown = await call(srv.url, 'POST', '/api/v1/api-keys', { ...op, body: { name: 'x', scopes: ['root'] } });
      assert.equal(unknown.status, 400);
      assert.equal(unknown.body.error.fields[0].field, 'body.scopes.0');
      for (const d of [0, 366, 1.5]) {
        const r = await call(srv.url, 'POST', '/api/v1/api-keys', {
          ...op,
          body: { name: 'x', scopes: ['runs:read'], expires_in_days: d },
        });
        assert.equal(r.status, 400, `expires_in_days ${d}`);
        assert.equal(r.body.error.fields[0].field, 'body.expires_in_days');
      }
      const viewer = await call(srv.url, 'POST', '/api/v1/api-keys', {
        ...users['viewer']!.caller,
        body: { name: 'x', scopes: ['runs:read'] },
      });
      assert.equal(viewer.status, 403, 'viewers lack keys:write');
    });

    test('a key can only mint narrower keys that do not outlive it', async () => {
      const parent = await call(srv.url, 'POST', '/api/v1/api-keys', {
        ...users['admin']!.caller,
        body: { name: 'parent', scopes: ['runs:read', 'keys:write'], expires_in_days: 2 },
      });
      assert.equal(parent.status, 201);
      const wider = await call(srv.url, 'POST', '/api/v1/api-keys', {
        bearer: parent.body.token,
        body: { name: 'c', scopes: ['runs:write'] },
      });
      assert.equal(wider.status, 400, 'the admin may run, but the parent key may not');
      assert.match(wider.body.error.message, /runs:write/);
      const child = await call(srv.url, 'POST', '/api/v1/api-keys', {
        bearer: parent.body.token,
        body: { name: 'c', scopes: ['runs:read'] },
      });
      assert.equal(child.status, 201);
      assert.ok(child.body.expires_at <= parent.body.expires_at);
      const noKeys = await call(srv.url, 'POST', '/api/v1/api-keys', {
        bearer: child.body.token,
        body: { name: 'd', scopes: ['runs:read'] },
      });
      assert.equal(noKeys.status, 403, 'a key without keys:write mints nothing');
    });

    test('revocation: own keys, admins for lower roles, 404 across users and organisations, effective at once', async () => {
      const op = users['operator']!.caller;
      const k1 = await call(srv.url, 'POST', '/api/v1/api-keys', {
        ...op,
        body: { name: 'k1', scopes: ['runs:read'] },
      });
      const k2 = await call(srv.url, 'POST', '/api/v1/api-keys', {
        ...op,
        body: { name: 'k2', scopes: ['runs:read'] },
      });
      const ownerKey = await call(srv.url, 'POST', '/api/v1/api-keys', {
        ...owner,
        body: { name: 'own', scopes: ['runs:read'] },
      });
      const otherOp = await call(srv.url, 'POST', '/api/v1/users', {
        ...owner,
        body: { username: 'op2', role: 'operator', password: pw },
      });
      const op2 = (await login(srv.url, 'op2', pw)).caller;
      assert.equal(otherOp.status, 201);
      assert.equal(
        (await call(srv.url, 'DELETE', `/api/v1/api-keys/${k1.body.id}`, op2)).status,
        404,
        'another operator does not see it',
      );
      assert.equal(
        (await call(srv.url, 'DELETE', `/api/v1/api-keys/${k1.body.id}`, { bearer: k2.body.token })).status,
        403,
        'a sibling key without keys:write',
      );
      assert.equal(
        (await call(srv.url, 'DELETE', `/api/v1/api-keys/${ownerKey.body.id}`, users['admin']!.caller)).status,
        403,
        "an admin cannot revoke an owner's key",
      );
      assert.equal(
        (await call(srv.url, 'DELETE', `/api/v1/api-keys/${k1.body.id}`, users['admin']!.caller)).status,
        204,
      );
      assert.equal(
        (await call(srv.url, 'GET', '/api/v1/auth/me', { bearer: k1.body.token })).status,
        401,
        'revoked at once',
      );
      assert.equal((await call(srv.url, 'DELETE', `/api/v1/api-keys/${k2.body.id}`, op)).status, 204);
      assert.equal((await call(srv.url, 'DELETE', `/api/v1/api-keys/${k2.body.id}`, op)).status, 204, 'idempotent');
      const adminList = await call(srv.url, 'GET', '/api/v1/api-keys', { cookie: users['admin']!.caller.cookie! });
      assert.ok(
        adminList.body.keys.some((k: { id: string }) => k.id === ownerKey.body.id),
        'admins see every key of the org',
      );
      const opList = await call(srv.url, 'GET', '/api/v1/api-keys', { cookie: op.cookie! });
      assert.ok(
        !opList.body.keys.some((k: { id: string }) => k.id === ownerKey.body.id),
        'operators see only their own',
      );
      const revoked = await srv.server.ctx.db.kysely
        .selectFrom('audit_events')
        .select('kind')
        .where('kind', '=', 'apikey.revoked')
        .execute();
      assert.equal(revoked.length, 2);
    });

    test("a demoted or disabled user's existing API key loses permissions at once", async () => {
      const u = await call(srv.url, 'POST', '/api/v1/users', {
        ...owner,
        body: { username: 'shrinking', role: 'admin', password: pw },
      });
      const s = (await login(srv.url, 'shrinking', pw)).caller;
      const key = await call(srv.url, 'POST', '/api/v1/api-keys', {
        ...s,
        body: { name: 'wide', scopes: ['users:read', 'runs:write', 'runs:read'] },
      });
      assert.equal(key.status, 201);
      assert.equal((await call(srv.url, 'GET', '/api/v1/users', { bearer: key.body.token })).status, 200);
      await call(srv.url, 'PATCH', `/api/v1/users/${u.body.user.id}`, { ...owner, body: { role: 'operator' } });
      assert.equal(
        (await call(srv.url, 'GET', '/api/v1/users', { bearer: key.body.token })).status,
        403,
        'users:read gone with the admin role',
      );
      const me = await call(srv.url, 'GET', '/api/v1/auth/me', { bearer: key.body.token });
      assert.deepEqual(me.body.permissions, ['runs:read', 'runs:write']);
      await call(srv.url, 'PATCH', `/api/v1/users/${u.body.user.id}`, { ...owner, body: { role: 'viewer' } });
      assert.deepEqual((await call(srv.url, 'GET', '/api/v1/auth/me', { bearer: key.body.token })).body.permissions, [
        'runs:read',
      ]);
      await call(srv.url, 'PATCH', `/api/v1/users/${u.body.user.id}`, { ...owner, body: { disabled: true } });
      assert.equal(
        (await call(srv.url, 'GET', '/api/v1/auth/me', { bearer: key.body.token })).status,
        401,
        'disabled: the key stops',
      );
      assert.equal(
        (await call(srv.url, 'GET', '/api/v1/auth/me', { cookie: s.cookie! })).status,
        401,
        'disabled: the session ended',
      );
      await call(srv.url, 'PATCH', `/api/v1/users/${u.body.user.id}`, {
        ...owner,
        body: { disabled: false, role: 'admin' },
      });
      assert.equal(
        (await call(srv.url, 'GET', '/api/v1/users', { bearer: key.body.token })).status,
        200,
        're-enabled and promoted: back at once',
      );
    });
  });
}
