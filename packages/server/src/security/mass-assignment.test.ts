// OWASP API3 (broken object property level authorization: mass assignment). Every route body
// (from the RouteRegistry) either refuses a field it does not declare, naming it, or drops it:
// privileged fields a client might slip in (role, org_id, owner, user_id, id, status,
// permissions, hashes…) never reach a handler. Checked on each schema and over HTTP as an
// owner (the caller most likely to get through), then end to end for the fields that matter most.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ROLE_PERMISSIONS } from '../auth/permissions.js';
import { type TestDb, testDatabases } from '../testing/databases.js';
import { mintTestKey, ownerId } from '../testing/keys.js';
import { startTestServer, type TestServer } from '../testing/server.js';
import { bodySchema, fillParams, isServerFault, requestFrom, sampleBody, sampleParams } from './support.js';

const PRIVILEGED: Readonly<Record<string, unknown>> = {
  role: 'owner',
  org_id: randomUUID(),
  org: 'other',
  owner: true,
  owner_id: randomUUID(),
  user_id: randomUUID(),
  id: randomUUID(),
  created_at: '2000-01-01T00:00:00Z',
  created_by: 'attacker',
  is_admin: true,
  admin: true,
  permissions: ['users:write'],
  status: 'success',
  approved_by: 'attacker',
  requested_by: 'attacker',
  key_hash: 'x',
  password_hash: 'x',
  token_hash: 'x',
  must_change_password: false,
};

for (const { name, create } of testDatabases()) {
  describe(`mass assignment (${name})`, () => {
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

    /** The route's object body: declared top-level fields, and a sample; undefined for non-object bodies. */
    const objectBody = (route: (typeof srv.server.ctx.routes.routes)[number]) => {
      const js = bodySchema(route);
      const { body } = sampleBody(route);
      if (js === undefined || typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
      const props = js.properties ?? js.anyOf?.find((a: { properties?: object }) => a.properties)?.properties ?? {};
      return { declared: new Set(Object.keys(props)), sample: body as Record<string, unknown> };
    };

    test('every body schema refuses or drops undeclared privileged fields', () => {
      const leaks: string[] = [];
      let checked = 0;
      for (const route of srv.server.ctx.routes.routes) {
        const ob = objectBody(route);
        if (ob === undefined || route.body === undefined) continue;
        for (const [field, value] of Object.entries(PRIVILEGED)) {
          if (ob.declared.has(field)) continue;
          checked++;
          const r = route.body.safeParse({ ...ob.sample, [field]: value });
          if (r.success && typeof r.data === 'object' && r.data !== null && field in r.data)
            leaks.push(`${route.method} ${route.url} passes ${field} through`);
        }
      }
      assert.ok(checked > 100, `only ${checked} checks`);
      assert.deepEqual(leaks, []);
    });

    test('over HTTP: each undeclared field is named in a 400, never 5xx, never applied', async (tc) => {
      const problems: string[] = [];
      let routes = 0;
      for (const route of srv.server.ctx.routes.routes) {
        const ob = objectBody(route);
        if (ob === undefined || route.auth === 'public') continue;
        routes++;
        const extra = Object.fromEntries(Object.entries(PRIVILEGED).filter(([f]) => !ob.declared.has(f)));
        const r = await requestFrom(srv.url, route.method, fillParams(route, sampleParams(route)), {
          headers: { authorization: `Bearer ${key}` },
          body: { ...ob.sample, ...extra },
        });
        if (isServerFault(r)) {
          problems.push(`${route.method} ${route.url}: ${r.status}`);
          continue;
        }
        const strict = route.body?.safeParse({ ...ob.sample, zz_unknown: 1 }).success === false;
        if (!strict) continue; // a stripping schema: the schema check above proves the drop
        const named = new Set(((r.body?.error?.fields ?? []) as { field: string }[]).map((f) => f.field));
        for (const f of Object.keys(extra)) {
          if (!named.has(`body.${f}`)) problems.push(`${route.method} ${route.url}: ${r.status}, body.${f} not named`);
        }
      }
      tc.diagnostic(`${routes} routes with object bodies`);
      assert.ok(routes >= 10);
      assert.deepEqual(problems, []);
    });

    test('end to end: a new user lands in the caller organisation with the asked role, nothing more', async () => {
      const auth = { headers: { authorization: `Bearer ${key}` } };
      const orgB = await requestFrom(srv.url, 'POST', '/api/v1/orgs', {
        ...auth,
        body: { name: 'other-org', owner_username: 'bob' },
      });
      assert.equal(orgB.status, 201, orgB.text);
      const smuggled = await requestFrom(srv.url, 'POST', '/api/v1/users', {
        ...auth,
        body: { username: 'sneaky', role: 'viewer', org_id: orgB.body.org.id },
      });
      assert.equal(smuggled.status, 400);
      assert.ok(smuggled.body.error.fields.some((f: { field: string }) => f.field === 'body.org_id'));
      const inB = await srv.server.ctx.db.kysely
        .selectFrom('users')
        .select('id')
        .where('org_id', '=', orgB.body.org.id)
        .where('username', '=', 'sneaky')
        .executeTakeFirst();
      assert.equal(inB, undefined);
      // An API key cannot be minted for someone else or with more than its creator's scopes.
      const k = await requestFrom(srv.url, 'POST', '/api/v1/api-keys', {
        ...auth,
        body: { name: 'k', scopes: ['runs:read'], user_id: orgB.body.owner.id },
      });
      assert.equal(k.status, 400);
      const viewer = await requestFrom(srv.url, 'POST', '/api/v1/users', {
        ...auth,
        body: { username: 'vera', role: 'viewer', password: 'a-long-enough-password-1' },
      });
      assert.equal(viewer.status, 201, viewer.text);
      const vkey = await mintTestKey(
        srv.server.ctx.db,
        srv.server.bootstrap.orgId,
        viewer.body.user.id,
        ROLE_PERMISSIONS.viewer,
      );
      const wide = await requestFrom(srv.url, 'POST', '/api/v1/api-keys', {
        headers: { authorization: `Bearer ${vkey}` },
        body: { name: 'wide', scopes: ['users:write'] },
      });
      assert.ok(wide.status === 400 || wide.status === 403, `${wide.status}`);
    });
  });
}
