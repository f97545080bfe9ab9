import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { hashToken } from '../auth/tokens.js';
import { type TestDb, testDatabases } from '../testing/databases.js';
import { startTestServer, type TestServer } from '../testing/server.js';
import { call, login } from './test-support.js';

async function auditKinds(srv: TestServer, kind: string): Promise<{ status: string; body: string }[]> {
  return srv.server.ctx.db.kysely
    .selectFrom('audit_events')
    .select(['status', 'body'])
    .where('kind', '=', kind)
    .orderBy('seq')
    .execute();
}

for (const { name, create } of testDatabases()) {
  describe(`sessions (${name})`, () => {
    let t: TestDb;
    let srv: TestServer;
    let password: string;
    before(async () => {
      t = await create();
      srv = await startTestServer(t.url);
      password = srv.server.bootstrap.password ?? '';
      assert.ok(password.length >= 12, 'bootstrap prints a one-time password');
    });
    after(async () => {
      await srv?.stop();
      await t?.drop();
    });

    test('login sets a hardened cookie, stores only the hash, and /auth/me reports the session', async () => {
      const { caller, res, setCookie } = await login(srv.url, 'admin', password);
      assert.equal(res.body.user.username, 'admin');
      assert.equal(res.body.user.role, 'owner');
      assert.equal(res.body.user.org.name, 'default');
      assert.equal(res.body.must_change_password, true);
      assert.match(setCookie, /HttpOnly/i);
      assert.match(setCookie, /SameSite=Strict/i);
      assert.match(setCookie, /Path=\//);
      assert.match(setCookie, /Max-Age=(43200|4319\d)\b/);
      assert.doesNotMatch(setCookie, /Secure/i, 'plain-http public URL: no Secure flag');
      const token = /airlock_session=([^;]+)/.exec(setCookie)![1]!;
      const rows = await srv.server.ctx.db.kysely.selectFrom('sessions').select(['id']).execute();
      assert.ok(
        rows.some((r) => r.id === hashToken(token)),
        'the session id is the sha256 of the cookie',
      );
      assert.ok(!rows.some((r) => r.id === token), 'the token itself is never stored');
      const me = await call(srv.url, 'GET', '/api/v1/auth/me', { cookie: caller.cookie });
      assert.equal(me.status, 200);
      assert.equal(me.body.kind, 'user');
      assert.equal(me.body.csrf_token, caller.csrf);
      assert.ok(me.body.permissions.includes('users:write'));
      const ok = await call(srv.url, 'GET', '/api/v1/orgs/current', { cookie: caller.cookie });
      assert.equal(ok.status, 200);
      assert.equal(ok.body.instance_owner_org, true);
    });

    test('failed logins are 401 with one message for unknown org, unknown user and wrong password, and are audited', async () => {
      const before = (await auditKinds(srv, 'auth.login')).filter((e) => e.status === 'failure').length;
      const a = await call(srv.url, 'POST', '/api/v1/auth/login', {
        body: { username: 'admin', password: 'wrong-password' },
      });
      const b = await call(srv.url, 'POST', '/api/v1/auth/login', {
        body: { username: 'nobody', password: 'wrong-password' },
      });
      const c = await call(srv.url, 'POST', '/api/v1/auth/login', {
        body: { org: 'nope', username: 'admin', password },
      });
      for (const r of [a, b, c]) {
        assert.equal(r.status, 401);
        assert.equal(r.body.error.code, 'unauthorized');
        assert.equal(r.body.error.message, a.body.error.message);
        assert.equal(r.headers.get('set-cookie'), null);
      }
      const failures = (await auditKinds(srv, 'auth.login')).filter((e) => e.status === 'failure');
      assert.equal(failures.length - before, 3);
      assert.match(failures.at(-1)!.body, /unknown_org/);
    });

    test('CSRF: unsafe cookie requests need the session token in x-csrf-token; API keys are exempt', async () => {
      const { caller } = await login(srv.url, 'admin', password);
      const body = { name: 'csrf-key', scopes: ['runs:read'] };
      const none = await call(srv.url, 'POST', '/api/v1/api-keys', { cookie: caller.cookie, body });
      assert.equal(none.status, 403);
      assert.match(none.body.error.message, /x-csrf-token/);
      const wrong = await call(srv.url, 'POST', '/api/v1/api-keys', {
        cookie: caller.cookie,
        csrf: `${caller.csrf.slice(0, -1)}${caller.csrf.endsWith('A') ? 'B' : 'A'}`,
        body,
      });
      assert.equal(wrong.status, 403);
      const other = await login(srv.url, 'admin', password);
      const crossed = await call(srv.url, 'POST', '/api/v1/api-keys', {
        cookie: caller.cookie,
        csrf: other.caller.csrf,
        body,
      });
      assert.equal(crossed.status, 403, "another session's CSRF token does not work");
      const good = await call(srv.url, 'POST', '/api/v1/api-keys', { ...caller, body });
      assert.equal(good.status, 201);
      const viaKey = await call(srv.url, 'DELETE', `/api/v1/api-keys/${good.body.id}`, { bearer: good.body.token });
      assert.equal(viaKey.status, 204, 'a key revokes itself without any CSRF header');
      const get = await call(srv.url, 'GET', '/api/v1/auth/me', { cookie: caller.cookie });
      assert.equal(get.status, 200, 'safe methods need no CSRF header');
    });

    test('sessions expire, slide, and end on logout', async () => {
      const { db } = srv.server.ctx;
      const { caller } = await login(srv.url, 'admin', password);
      const id = hashToken(caller.cookie.split('=')[1]!);
      const old = new Date(Date.now() - 5 * 60 * 1000).toISOString();
      await db.kysely.updateTable('sessions').set({ last_seen_at: old }).where('id', '=', id).execute();
      const before = await db.kysely
        .selectFrom('sessions')
        .select(['expires_at'])
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      const slid = await call(srv.url, 'GET', '/api/v1/auth/me', { cookie: caller.cookie });
      assert.equal(slid.status, 200);
      assert.match(slid.headers.get('set-cookie') ?? '', /airlock_session=.*Max-Age=(43200|4319\d)\b/);
      const afterRow = await db.kysely
        .selectFrom('sessions')
        .select(['expires_at'])
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      assert.ok(afterRow.expires_at >= before.expires_at);

      const out = await call(srv.url, 'POST', '/api/v1/auth/logout', { cookie: caller.cookie });
      assert.equal(out.status, 403, 'logout is an unsafe method: CSRF applies');
      const out2 = await call(srv.url, 'POST', '/api/v1/auth/logout', caller);
      assert.equal(out2.status, 204);
      assert.match(out2.headers.get('set-cookie') ?? '', /airlock_session=;/);
      assert.equal((await call(srv.url, 'GET', '/api/v1/auth/me', { cookie: caller.cookie })).status, 401);
      assert.equal((await auditKinds(srv, 'auth.logout')).length >= 1, true);

      const second = await login(srv.url, 'admin', password);
      await db.kysely
        .updateTable('sessions')
        .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
        .where('id', '=', hashToken(second.caller.cookie.split('=')[1]!))
        .execute();
      assert.equal((await call(srv.url, 'GET', '/api/v1/auth/me', { cookie: second.caller.cookie })).status, 401);
      assert.equal((await call(srv.url, 'GET', '/api/v1/auth/me', { cookie: 'airlock_session=garbage' })).status, 401);
    });

    test('rate limit: 10 failures per username and address, then 429 even with the right password', async () => {
      const create = await login(srv.url, 'admin', password);
      const made = await call(srv.url, 'POST', '/api/v1/users', {
        ...create.caller,
        body: { username: 'target', role: 'viewer', password: 'target-password-1' },
      });
      assert.equal(made.status, 201);
      for (let i = 0; i < 10; i++) {
        const r = await call(srv.url, 'POST', '/api/v1/auth/login', {
          body: { username: 'target', password: `wrong-${i}` },
        });
        assert.equal(r.status, 401, `attempt ${i + 1}`);
      }
      const blocked = await call(srv.url, 'POST', '/api/v1/auth/login', {
        body: { username: 'target', password: 'target-password-1' },
      });
      assert.equal(blocked.status, 429);
      assert.equal(blocked.body.error.code, 'rate_limited');
      assert.match(blocked.body.error.message, /too many failed logins/);
      assert.ok(Number(blocked.headers.get('retry-after')) > 0);
      const audited = (await auditKinds(srv, 'auth.login')).filter((e) => e.body.includes('"rate_limited":true'));
      assert.equal(audited.length, 1, 'reaching the limit is audited once');
      // Another username from the same address is not affected.
      await login(srv.url, 'admin', password);
    });

    test('password change: validation, wrong current, success clears must_change_password, file and other sessions', async () => {
      const file = join(srv.home, 'server', 'initial-admin-password');
      assert.ok(existsSync(file), 'the one-time password is kept until changed');
      const a = await login(srv.url, 'admin', password);
      const b = await login(srv.url, 'admin', password);
      const short = await call(srv.url, 'POST', '/api/v1/auth/password', {
        ...a.caller,
        body: { current: password, new: 'short' },
      });
      assert.equal(short.status, 400);
      assert.deepEqual(
        short.body.error.fields.map((f: { field: string }) => f.field),
        ['body.new'],
      );
      const wrong = await call(srv.url, 'POST', '/api/v1/auth/password', {
        ...a.caller,
        body: { current: 'not-it', new: 'a-new-long-password' },
      });
      assert.equal(wrong.status, 400);
      assert.equal(wrong.body.error.fields[0].field, 'body.current');
      const key = await call(srv.url, 'POST', '/api/v1/api-keys', {
        ...a.caller,
        body: { name: 'k', scopes: ['keys:write'] },
      });
      const viaKey = await call(srv.url, 'POST', '/api/v1/auth/password', {
        bearer: key.body.token,
        body: { current: password, new: 'a-new-long-password' },
      });
      assert.equal(viaKey.status, 403, 'an API key cannot change the password');
      const ok = await call(srv.url, 'POST', '/api/v1/auth/password', {
        ...a.caller,
        body: { current: password, new: 'a-new-long-password' },
      });
      assert.equal(ok.status, 204);
      assert.equal(existsSync(file), false, 'the initial password file is deleted');
      assert.equal(
        (await call(srv.url, 'GET', '/api/v1/auth/me', { cookie: b.caller.cookie })).status,
        401,
        'other sessions end',
      );
      const me = await call(srv.url, 'GET', '/api/v1/auth/me', { cookie: a.caller.cookie });
      assert.equal(me.status, 200, 'the current session stays');
      assert.equal(me.body.must_change_password, false);
      const old = await call(srv.url, 'POST', '/api/v1/auth/login', { body: { username: 'admin', password } });
      assert.equal(old.status, 401);
      const fresh = await login(srv.url, 'admin', 'a-new-long-password');
      assert.equal(fresh.res.body.must_change_password, false);
      assert.equal((await auditKinds(srv, 'auth.password_changed')).filter((e) => e.status === 'success').length, 1);
      password = 'a-new-long-password';
    });
  });
}

describe('sessions over https', () => {
  test('the cookie is Secure when the public URL is https', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { createServer } = await import('../app.js');
    const { serverConfig } = await import('../config.js');
    const dir = mkdtempSync(join(tmpdir(), 'airlock-https-'));
    const server = await createServer(
      serverConfig({
        listen: '127.0.0.1:0',
        home: dir,
        database: join(dir, 'a.db'),
        publicUrl: 'https://airlock.example',
        logLevel: 'silent',
      }),
    );
    try {
      const url = await server.listen();
      const { setCookie } = await login(url, 'admin', server.bootstrap.password ?? '');
      assert.match(setCookie, /; Secure/i);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
