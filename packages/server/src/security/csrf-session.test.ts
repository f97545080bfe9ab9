// OWASP API2 (broken authentication) for the dashboard's cookie sessions: CSRF on every unsafe
// cookie-authenticated route (from the RouteRegistry, so new routes are covered), cross-site
// content types refused before any route code, and session fixation: the session id rotates on
// login, a planted or invented cookie is never adopted, and logout ends the session server-side.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { call, login } from '../accounts/test-support.js';
import { isUnsafeMethod } from '../auth/csrf.js';
import { SESSION_COOKIE } from '../auth/sessions.js';
import { type TestDb, testDatabases } from '../testing/databases.js';
import { startTestServer, type TestServer } from '../testing/server.js';
import { fillParams, sampleBody } from './support.js';

const cookieValue = (setCookie: string): string | undefined =>
  new RegExp(`${SESSION_COOKIE}=([^;]*)`).exec(setCookie)?.[1];

for (const { name, create } of testDatabases()) {
  describe(`CSRF and session fixation (${name})`, () => {
    let t: TestDb;
    let srv: TestServer;
    let password: string;
    before(async () => {
      t = await create();
      srv = await startTestServer(t.url);
      password = srv.server.bootstrap.password ?? '';
    });
    after(async () => {
      await srv?.stop();
      await t?.drop();
    });

    test('every unsafe route refuses a cookie-authenticated request without the right CSRF token', async (tc) => {
      const { caller } = await login(srv.url, 'admin', password);
      const other = await login(srv.url, 'admin', password);
      const routes = srv.server.ctx.routes.routes.filter((r) => isUnsafeMethod(r.method) && r.auth !== 'public');
      assert.ok(routes.length >= 15, `only ${routes.length} unsafe routes`);
      const problems: string[] = [];
      for (const route of routes) {
        const url = fillParams(route, () => '00000000-0000-4000-8000-000000000000');
        const { body } = sampleBody(route);
        const attempts: [string, Record<string, string | undefined>][] = [
          ['no header', {}],
          ['empty header', { csrf: '' }],
          ["another session's token", { csrf: other.caller.csrf }],
          ['the session cookie as token', { csrf: caller.cookie.split('=')[1] }],
        ];
        for (const [label, extra] of attempts) {
          const r = await call(srv.url, route.method, url, {
            cookie: caller.cookie,
            ...(extra.csrf === undefined ? {} : { csrf: extra.csrf }),
            ...(body === undefined ? {} : { body }),
          });
          if (r.status !== 403 || !/x-csrf-token/.test(r.body?.error?.message ?? ''))
            problems.push(`${route.method} ${route.url} (${label}): ${r.status} ${r.text.slice(0, 120)}`);
        }
      }
      tc.diagnostic(`${routes.length} unsafe routes × 4 forged requests`);
      assert.deepEqual(problems, []);
      // The session still works with its token (the refusals did not end it).
      const ok = await call(srv.url, 'GET', '/api/v1/auth/me', { cookie: caller.cookie });
      assert.equal(ok.status, 200);
    });

    test('cross-site form posts never reach a route: only application/json bodies are parsed', async () => {
      const { caller } = await login(srv.url, 'admin', password);
      for (const contentType of [
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'text/plain',
      ]) {
        for (const url of ['/api/v1/auth/login', '/api/v1/api-keys', '/api/v1/users']) {
          const r = await call(srv.url, 'POST', url, {
            cookie: caller.cookie,
            raw: 'username=admin&password=x&name=k',
            contentType,
          });
          assert.equal(r.status, 415, `${url} as ${contentType}`);
        }
      }
    });

    test('the session cookie is HttpOnly and SameSite=Strict', async () => {
      const { setCookie } = await login(srv.url, 'admin', password);
      assert.match(setCookie, /HttpOnly/i);
      assert.match(setCookie, /SameSite=Strict/i);
      assert.match(setCookie, /Path=\//);
    });

    test('session fixation: login rotates the id; a planted session is ended, an invented one never adopted', async () => {
      // The attacker's own valid session, planted in the victim's browser.
      const attacker = await login(srv.url, 'admin', password);
      const planted = attacker.caller.cookie;
      const r = await call(srv.url, 'POST', '/api/v1/auth/login', {
        cookie: planted,
        body: { username: 'admin', password },
      });
      assert.equal(r.status, 200);
      const fresh = cookieValue(r.headers.get('set-cookie') ?? '');
      assert.ok(fresh !== undefined && fresh !== '');
      assert.notEqual(`${SESSION_COOKIE}=${fresh}`, planted, 'a new session id on login');
      assert.notEqual(r.body.csrf_token, attacker.caller.csrf, 'a new CSRF token on login');
      const stale = await call(srv.url, 'GET', '/api/v1/auth/me', { cookie: planted });
      assert.equal(stale.status, 401, 'the planted session was ended by the login');

      // An invented, well-formed cookie value: not adopted, not valid afterwards.
      const invented = randomBytes(32).toString('base64url');
      const r2 = await call(srv.url, 'POST', '/api/v1/auth/login', {
        cookie: `${SESSION_COOKIE}=${invented}`,
        body: { username: 'admin', password },
      });
      assert.equal(r2.status, 200);
      assert.notEqual(cookieValue(r2.headers.get('set-cookie') ?? ''), invented);
      const adopted = await call(srv.url, 'GET', '/api/v1/auth/me', { cookie: `${SESSION_COOKIE}=${invented}` });
      assert.equal(adopted.status, 401);

      // Every login is a new id, and logout ends it on the server (a copied cookie is dead).
      const a = await login(srv.url, 'admin', password);
      const b = await login(srv.url, 'admin', password);
      assert.notEqual(a.caller.cookie, b.caller.cookie);
      const out = await call(srv.url, 'POST', '/api/v1/auth/logout', { ...a.caller });
      assert.equal(out.status, 204);
      assert.equal((await call(srv.url, 'GET', '/api/v1/auth/me', { cookie: a.caller.cookie })).status, 401);
      assert.equal((await call(srv.url, 'GET', '/api/v1/auth/me', { cookie: b.caller.cookie })).status, 200);
    });
  });
}
