// OWASP API4 (unrestricted resource consumption), request bodies: every route that takes a
// body (from the RouteRegistry) refuses an oversized body with 413 and an over-deep JSON body
// with 400 naming `body`, before authentication and before any code that recurses on depth
// runs (JSON.stringify of a 500,000-deep array overflows the stack). The server keeps serving.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ROLE_PERMISSIONS } from '../auth/permissions.js';
import { DEFAULT_HTTP_LIMITS, jsonDepthExceeds } from '../http/limits.js';
import { type TestDb, testDatabases } from '../testing/databases.js';
import { mintTestKey, ownerId } from '../testing/keys.js';
import { startTestServer, type TestServer } from '../testing/server.js';
import { fillParams, isServerFault } from './support.js';

const MAX = DEFAULT_HTTP_LIMITS.maxJsonDepth;
const nested = (depth: number, inner = '1') => `${'['.repeat(depth)}${inner}${']'.repeat(depth)}`;

describe('jsonDepthExceeds', () => {
  test('counts arrays and objects, ignores brackets inside strings and escapes', () => {
    assert.equal(jsonDepthExceeds(nested(3), 3), false);
    assert.equal(jsonDepthExceeds(nested(4), 3), true);
    assert.equal(jsonDepthExceeds('{"a":{"b":{"c":1}}}', 3), false);
    assert.equal(jsonDepthExceeds('{"a":{"b":{"c":{}}}}', 3), true);
    assert.equal(jsonDepthExceeds(`{"s":"${'['.repeat(100)}"}`, 2), false);
    assert.equal(
      jsonDepthExceeds(`{"s":"\\"${'{'.repeat(100)}"}`, 2),
      false,
      'an escaped quote does not end the string',
    );
    assert.equal(jsonDepthExceeds(`["\\\\",${nested(5)}]`, 3), true, 'an escaped backslash does');
  });
});

for (const { name, create } of testDatabases()) {
  describe(`request body limits (${name})`, () => {
    let t: TestDb;
    let srv: TestServer;
    let key: string;
    before(async () => {
      t = await create();
      srv = await startTestServer(t.url);
      const { db } = srv.server.ctx;
      const org = srv.server.bootstrap.orgId;
      key = await mintTestKey(db, org, await ownerId(db, org), ROLE_PERMISSIONS.owner);
    });
    after(async () => {
      await srv?.stop();
      await t?.drop();
    });

    const send = (method: string, url: string, raw: string, auth = true) =>
      fetch(new URL(url, srv.url), {
        method,
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${key}` } : {}) },
        body: raw,
      }).then(async (r) => ({
        status: r.status, // biome-ignore lint/suspicious/noExplicitAny: parsed JSON, inspected by assertions
        body: (await r.json().catch(() => undefined)) as any,
      }));

    const bodyRoutes = () => srv.server.ctx.routes.routes.filter((r) => r.body !== undefined);
    const urlOf = (url: string) => url.replace(/:[A-Za-z_]+/g, '00000000-0000-4000-8000-000000000000');

    test('every body route: over 1 MiB is 413 payload_too_large, with or without credentials', async () => {
      const big = JSON.stringify({ pad: 'x'.repeat(DEFAULT_HTTP_LIMITS.bodyLimitBytes + 1) });
      const routes = bodyRoutes();
      assert.ok(routes.length >= 10);
      for (const route of routes) {
        for (const auth of [true, false]) {
          const r = await send(route.method, urlOf(route.url), big, auth);
          assert.equal(r.status, 413, `${route.method} ${route.url} (auth ${auth})`);
          assert.equal(r.body?.error?.code, 'payload_too_large');
        }
      }
    });

    test(`every body route: JSON nested deeper than ${MAX} is 400 naming body, never 5xx`, async () => {
      for (const route of bodyRoutes()) {
        for (const raw of [
          nested(MAX + 1),
          `{"args":${nested(5000)}}`,
          `{"a":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`,
          nested(500_000),
        ]) {
          const r = await send(route.method, urlOf(route.url), raw);
          assert.equal(r.status, 400, `${route.method} ${route.url} depth ${raw.length}`);
          assert.equal(r.body?.error?.code, 'bad_request');
          assert.deepEqual(
            r.body.error.fields?.map((f: { field: string }) => f.field),
            ['body'],
          );
        }
      }
    });

    test('depth within the limit reaches the route (validation, not the depth guard)', async () => {
      // A run request whose args nest just under the limit: the route answers (404 for the
      // unknown runner, 400 for the args), never 5xx.
      const r = await send(
        'POST',
        '/api/v1/runs',
        `{"runner":"nobody","action":"a.b","reason":"deep","args":{"x":${nested(MAX - 3)}}}`,
      );
      assert.ok(!isServerFault(r), `${r.status} ${JSON.stringify(r.body)}`);
      assert.notDeepEqual(
        r.body?.error?.fields?.map((f: { field: string }) => f.field),
        ['body'],
      );
      for (const route of bodyRoutes()) {
        const url = fillParams(route, () => '00000000-0000-4000-8000-000000000000');
        const rr = await send(route.method, url, `{"x":${nested(MAX - 2)}}`);
        assert.ok(!isServerFault(rr), `${route.method} ${route.url}: ${rr.status}`);
      }
    });

    test('OAuth form bodies are bounded too (64 KiB) and the server keeps serving', async () => {
      const r = await fetch(new URL('/oauth/token', srv.url), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `grant_type=authorization_code&code=${'a'.repeat(70 * 1024)}`,
      });
      assert.equal(r.status, 413);
      const health = await fetch(new URL('/healthz', srv.url));
      assert.equal(health.status, 200);
      const me = await fetch(new URL('/api/v1/auth/me', srv.url), { headers: { authorization: `Bearer ${key}` } });
      assert.equal(me.status, 200);
    });
  });
}
