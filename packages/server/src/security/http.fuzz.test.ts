// Fuzzing the JSON API (fast-check, fixed seed; `npm run fuzz` runs it longer): random JSON
// bodies at every route of the RouteRegistry, as an owner so requests reach validation. Bodies
// are random JSON values, objects with the route's own field names and random values, and valid
// samples with one field replaced. The oracle: never a server fault; a body the route's schema
// refuses gets 400 `bad_request` whose `fields` each name a place in the request; and the
// server keeps serving throughout.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { ROLE_PERMISSIONS } from '../auth/permissions.js';
import type { RouteSpec } from '../http/routes.js';
import { type TestDb, testDatabases } from '../testing/databases.js';
import { mintTestKey, ownerId } from '../testing/keys.js';
import { startTestServer, type TestServer } from '../testing/server.js';
import {
  bodySchema,
  fillParams,
  fuzzOptions,
  isServerFault,
  requestFrom,
  sampleBody,
  sampleParams,
} from './support.js';

const anyJson = fc.jsonValue({ maxDepth: 4 });

/** Bodies shaped after the route: its field names with random values, or a valid sample with one field changed. */
function bodyArb(route: RouteSpec): fc.Arbitrary<unknown> {
  const js = bodySchema(route);
  const names = Object.keys((js?.properties ?? {}) as object);
  const { body } = sampleBody(route);
  const options: fc.Arbitrary<unknown>[] = [anyJson];
  if (names.length > 0) {
    const field = fc.constantFrom(...names);
    options.push(fc.dictionary(field, anyJson, { maxKeys: names.length }));
    if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
      options.push(
        fc.tuple(field, anyJson).map(([k, v]) => ({ ...(body as Record<string, unknown>), [k]: v })),
        fc
          .tuple(fc.string({ maxLength: 20 }), anyJson)
          .map(([k, v]) => ({ ...(body as Record<string, unknown>), [k]: v })),
      );
    }
  }
  return fc.oneof(...options);
}

for (const { name, create } of testDatabases()) {
  describe(`HTTP body fuzzing at every route (${name})`, () => {
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

    test('random JSON bodies: 4xx with field errors for what the schema refuses, never 5xx', async (tc) => {
      const routes = srv.server.ctx.routes.routes.filter(
        (r) => r.body !== undefined && !r.url.endsWith('/stream') && r.url !== '/api/v1/auth/login',
      );
      assert.ok(routes.length >= 10);
      const cases = fc.oneof(...routes.map((r) => bodyArb(r).map((body) => ({ route: r, body }))));
      const statuses = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(cases, async ({ route, body }) => {
          const r = await requestFrom(srv.url, route.method, fillParams(route, sampleParams(route)), {
            headers: { authorization: `Bearer ${key}` },
            body,
          });
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
          assert.ok(!isServerFault(r), `${route.method} ${route.url} ${r.status}: ${r.text.slice(0, 300)}`);
          assert.ok(r.status < 500 || r.status === 503, `${r.status}`);
          // The registry reads a JSON `null` body as no body (so a defaulted body schema applies).
          if (route.body?.safeParse(body ?? undefined).success === false) {
            assert.equal(r.status, 400, `${route.method} ${route.url} accepted a body its schema refuses: ${r.status}`);
            assert.equal(r.body?.error?.code, 'bad_request');
            const fields = (r.body.error.fields ?? []) as { field: string; message: string }[];
            assert.ok(fields.length > 0, `no field errors: ${r.text}`);
            for (const f of fields) {
              assert.match(f.field, /^(body|params|query)(\.|$)/);
              assert.equal(typeof f.message, 'string');
            }
          }
        }),
        fuzzOptions(300),
      );
      tc.diagnostic(`statuses: ${[...statuses].map(([s, n]) => `${s}×${n}`).join(' ')}`);
      const health = await requestFrom(srv.url, 'GET', '/healthz');
      assert.equal(health.status, 200);
      const me = await requestFrom(srv.url, 'GET', '/api/v1/auth/me', { headers: { authorization: `Bearer ${key}` } });
      assert.equal(me.status, 200, 'the fuzzing key still works');
    });

    test('random bodies at the public login route: 400 or 401, never 5xx', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(anyJson, fc.record({ username: anyJson, password: anyJson, org: anyJson }, { requiredKeys: [] })),
          async (body) => {
            const r = await requestFrom(srv.url, 'POST', '/api/v1/auth/login', { from: '127.0.9.1', body });
            assert.ok(r.status === 400 || r.status === 401 || r.status === 429, `${r.status} ${r.text}`);
          },
        ),
        fuzzOptions(40),
      );
    });
  });
}
