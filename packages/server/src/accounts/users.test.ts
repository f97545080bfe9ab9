import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { type TestDb, testDatabases } from '../testing/databases.js';
import { startTestServer, type TestServer } from '../testing/server.js';
import { type Caller, call, login } from './test-support.js';

for (const { name, create } of testDatabases()) {
  describe(`users and organisations (${name})`, () => {
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
        assert.equal(r.status, 201, r.text);
        users[role] = { id: r.body.user.id, caller: (await login(srv.url, `${role}1`, pw)).caller };
      }
    });
    after(async () => {
      await srv?.stop();
      await t?.drop();
    });

    test('create: generated one-time password, duplicates, validation, audit', async () => {
      const r = await call(srv.url, 'POST', '/api/v1/users', { ...owner, body: { username: 'gen', role: 'viewer' } });
      assert.equal(r.status, 201);
      assert.equal(typeof r.body.password, 'string');
      assert.equal(r.body.user.must_change_password, true);
      const l = await login(srv.url, 'gen', r.body.password);
      assert.equal(l.res.body.must_change_password, true);
      const dup = await call(srv.url, 'POST', '/api/v1/users', { ...owner, body: { username: 'gen', role: 'viewer' } });
      assert.equal(dup.status, 409);
      const bad = await call(srv.url, 'POST', '/api/v1/users', {
        ...owner,
        body: { username: 'Bad Name', role: 'boss' },
      });
      assert.equal(bad.status, 400);
      assert.deepEqual(bad.body.error.fields.map((f: { field: string }) => f.field).sort(), [
        'body.role',
        'body.username',
      ]);
      const list = await call(srv.url, 'GET', '/api/v1/users', { cookie: owner.cookie! });
      assert.equal(list.status, 200);
      assert.ok(list.body.users.some((u: { username: string }) => u.username === 'gen'));
      assert.ok(!JSON.stringify(list.body).includes('scrypt$'), 'hashes never leave the server');
      const events = await srv.server.ctx.db.kysely
        .selectFrom('audit_events')
        .select('kind')
        .where('kind', '=', 'user.created')
        .execute();
      assert.ok(events.length >= 4);
    });

    test('nobody grants or manages a role above their own; only owners manage owners', async () => {
      const admin = users['admin']!.caller;
      const operator = users['operator']!.caller;
      assert.equal(
        (await call(srv.url, 'POST', '/api/v1/users', { ...admin, body: { username: 'o2', role: 'owner' } })).status,
        403,
      );
      const a2 = await call(srv.url, 'POST', '/api/v1/users', { ...admin, body: { username: 'a2', role: 'admin' } });
      assert.equal(a2.status, 201, 'an admin may create an admin');
      const ownerId =
        srv.server.bootstrap.orgId &&
        (await call(srv.url, 'GET', '/api/v1/auth/me', { cookie: owner.cookie! })).body.user.id;
      const patchOwner = await call(srv.url, 'PATCH', `/api/v1/users/${ownerId}`, {
        ...admin,
        body: { disabled: true },
      });
      assert.equal(patchOwner.status, 403);
      assert.match(patchOwner.body.error.message, /cannot manage an owner/);
      const promote = await call(srv.url, 'PATCH', `/api/v1/users/${users['viewer']!.id}`, {
        ...admin,
        body: { role: 'owner' },
      });
      assert.equal(promote.status, 403);
      assert.equal(
        (
          await call(srv.url, 'PATCH', `/api/v1/users/${users['viewer']!.id}`, {
            ...operator,
            body: { role: 'operator' },
          })
        ).status,
        403,
      );
      const ok = await call(srv.url, 'PATCH', `/api/v1/users/${users['viewer']!.id}`, {
        ...admin,
        body: { role: 'operator' },
      });
      assert.equal(ok.status, 200);
      assert.equal(ok.body.role, 'operator');
      const back = await call(srv.url, 'PATCH', `/api/v1/users/${users['viewer']!.id}`, {
        ...admin,
        body: { role: 'viewer' },
      });
      assert.equal(back.body.role, 'viewer');
      const unknown = await call(srv.url, 'PATCH', `/api/v1/users/${randomUUID()}`, {
        ...admin,
        body: { role: 'viewer' },
      });
      assert.equal(unknown.status, 404);
      const malformed = await call(srv.url, 'PATCH', '/api/v1/users/no-such-user', {
        ...admin,
        body: { role: 'viewer' },
      });
      assert.equal(malformed.status, 400);
    });

    test('an organisation keeps at least one enabled owner; nobody disables themselves', async () => {
      const me = (await call(srv.url, 'GET', '/api/v1/auth/me', { cookie: owner.cookie! })).body.user.id as string;
      const demote = await call(srv.url, 'PATCH', `/api/v1/users/${me}`, { ...owner, body: { role: 'admin' } });
      assert.equal(demote.status, 409);
      assert.match(demote.body.error.message, /at least one enabled owner/);
      const self = await call(srv.url, 'PATCH', `/api/v1/users/${me}`, { ...owner, body: { disabled: true } });
      assert.equal(self.status, 409);
      const o2 = await call(srv.url, 'POST', '/api/v1/users', {
        ...owner,
        body: { username: 'owner2', role: 'owner', password: pw },
      });
      assert.equal(o2.status, 201);
      const o2c = (await login(srv.url, 'owner2', pw)).caller;
      const dis = await call(srv.url, 'PATCH', `/api/v1/users/${o2.body.user.id}`, {
        ...owner,
        body: { disabled: true },
      });
      assert.equal(dis.status, 200);
      assert.equal(
        (await call(srv.url, 'GET', '/api/v1/auth/me', { cookie: o2c.cookie! })).status,
        401,
        'disabling ends sessions',
      );
      const relogin = await call(srv.url, 'POST', '/api/v1/auth/login', { body: { username: 'owner2', password: pw } });
      assert.equal(relogin.status, 401, 'a disabled user cannot log in');
      assert.equal(
        (await call(srv.url, 'PATCH', `/api/v1/users/${me}`, { ...owner, body: { role: 'admin' } })).status,
        409,
        'a disabled owner does not count',
      );
      const enable = await call(srv.url, 'PATCH', `/api/v1/users/${o2.body.user.id}`, {
        ...owner,
        body: { disabled: false },
      });
      assert.equal(enable.body.disabled, false);
    });

    test('organisations: instance owners create them; tenants are isolated', async () => {
      const r = await call(srv.url, 'POST', '/api/v1/orgs', {
        ...owner,
        body: { name: 'beta', owner_username: 'boss' },
      });
      assert.equal(r.status, 201, r.text);
      assert.equal(r.body.owner.role, 'owner');
      assert.equal(typeof r.body.password, 'string');
      assert.equal(
        (await call(srv.url, 'POST', '/api/v1/orgs', { ...owner, body: { name: 'beta', owner_username: 'x' } })).status,
        409,
      );
      assert.equal(
        (
          await call(srv.url, 'POST', '/api/v1/orgs', {
            ...users['admin']!.caller,
            body: { name: 'gamma', owner_username: 'x' },
          })
        ).status,
        403,
      );
      const boss = (await login(srv.url, 'boss', r.body.password, 'beta')).caller;
      const cur = await call(srv.url, 'GET', '/api/v1/orgs/current', { cookie: boss.cookie! });
      assert.equal(cur.body.name, 'beta');
      assert.equal(cur.body.instance_owner_org, false);
      assert.equal(
        (await call(srv.url, 'POST', '/api/v1/orgs', { ...boss, body: { name: 'gamma', owner_username: 'x' } })).status,
        403,
        'owners of other orgs are not instance owners',
      );
      const list = await call(srv.url, 'GET', '/api/v1/users', { cookie: boss.cookie! });
      assert.deepEqual(
        list.body.users.map((u: { username: string }) => u.username),
        ['boss'],
      );
      assert.equal(
        (await call(srv.url, 'PATCH', `/api/v1/users/${users['viewer']!.id}`, { ...boss, body: { role: 'admin' } }))
          .status,
        404,
      );
      // The same username may exist in two organisations; login picks by org.
      const dupe = await call(srv.url, 'POST', '/api/v1/users', {
        ...boss,
        body: { username: 'admin', role: 'viewer', password: pw },
      });
      assert.equal(dupe.status, 201);
      const l = await login(srv.url, 'admin', pw, 'beta');
      assert.equal(l.res.body.user.org.name, 'beta');
      assert.equal(l.res.body.user.role, 'viewer');
    });
  });
}
