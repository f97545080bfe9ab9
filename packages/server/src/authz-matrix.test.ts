// The authorization matrix: every route in the registry (so routes other modules add later
// are covered without touching this file) is called as every kind of caller, on SQLite and
// PostgreSQL, and the permission and tenancy decisions are checked:
//   - public routes answer without credentials (never "authentication required", never 5xx);
//   - anonymous callers get 401 on every other route;
//   - a caller whose role or key scope lacks the route's permission gets 403, whatever the body;
//   - permitted callers never get 401, 5xx, or the registry's permission 403;
//   - another organisation's user gets 404 for `:id` routes pointing at org A's objects, never
//     2xx, and no response to org B ever contains an id of org A's objects.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { type Caller, call, type HttpResult, login } from './accounts/test-support.js';
import { type Permission, ROLE_PERMISSIONS } from './auth/permissions.js';
import { createSession } from './auth/sessions.js';
import { newToken } from './auth/tokens.js';
import type { Db } from './db/database.js';
import type { Role } from './db/schema.js';
import type { RouteSpec } from './http/routes.js';
import type { ApproverTables } from './policy/approvers.js';
import { sampleBody } from './security/support.js';
import { type TestDb, testDatabases } from './testing/databases.js';
import { startTestServer, type TestServer } from './testing/server.js';

/** Routes that exist today; the matrix fails if the registry shrinks below this. */
const MIN_ROUTES = 30;

// ---- callers ----

interface MatrixCaller {
  readonly label: string;
  readonly org: 'A' | 'B' | null;
  /** Effective permissions; undefined for anonymous. */
  readonly permissions: ReadonlySet<Permission> | undefined;
  /** Credentials for one call (sessions are fresh per call, so logout or password routes cannot end the matrix). */
  credentials(): Promise<Caller>;
}

async function insertKey(
  db: Db,
  orgId: string,
  userId: string,
  scopes: readonly string[],
): Promise<{ id: string; token: string; prefix: string }> {
  const t = newToken('alk');
  const id = randomUUID();
  const now = new Date().toISOString();
  await db.kysely
    .insertInto('api_keys')
    .values({
      id,
      org_id: orgId,
      user_id: userId,
      name: 'matrix',
      prefix: t.prefix,
      key_hash: t.hash,
      scopes: JSON.stringify(scopes),
      expires_at: null,
      revoked_at: null,
      created_at: now,
      last_used_at: null,
    })
    .execute();
  return { id, token: t.token, prefix: t.prefix };
}

interface Fixture {
  callers: MatrixCaller[];
  /** Org-A object ids by the URL segment that precedes the `:param` (users, api-keys, runners…). */
  objects: Map<string, string>;
  /** Every id of org A's objects; none may appear in a response to org B. */
  orgAIds: Set<string>;
}

async function buildFixture(srv: TestServer): Promise<Fixture> {
  const { db } = srv.server.ctx;
  const pw = 'matrix-password-123';
  const ownerA = (await login(srv.url, 'admin', srv.server.bootstrap.password ?? '')).caller;
  const orgA = srv.server.bootstrap.orgId;
  const me = await call(srv.url, 'GET', '/api/v1/auth/me', { cookie: ownerA.cookie });
  const userIds: Record<string, string> = { owner: me.body.user.id };
  for (const role of ['admin', 'operator', 'viewer'] as const) {
    const r = await call(srv.url, 'POST', '/api/v1/users', {
      ...ownerA,
      body: { username: `m-${role}`, role, password: pw },
    });
    assert.equal(r.status, 201, r.text);
    userIds[role] = r.body.user.id;
  }
  const victim = await call(srv.url, 'POST', '/api/v1/users', {
    ...ownerA,
    body: { username: 'm-victim', role: 'viewer', password: pw },
  });
  const orgB = await call(srv.url, 'POST', '/api/v1/orgs', {
    ...ownerA,
    body: { name: 'matrix-b', owner_username: 'b-owner' },
  });
  assert.equal(orgB.status, 201, orgB.text);
  const bOwnerId = orgB.body.owner.id as string;
  const bOrgId = orgB.body.org.id as string;

  const orgAIds = new Set<string>([orgA, victim.body.user.id, ...Object.values(userIds)]);
  const callers: MatrixCaller[] = [
    { label: 'anonymous', org: null, permissions: undefined, credentials: async () => ({}) },
  ];
  const sessionCaller = (label: string, org: 'A' | 'B', userId: string, role: Role): MatrixCaller => ({
    label,
    org,
    permissions: new Set(ROLE_PERMISSIONS[role]),
    credentials: async () => {
      const s = await createSession(db, userId);
      return { cookie: `airlock_session=${s.token}`, csrf: s.csrfToken };
    },
  });
  const keyCaller = async (
    label: string,
    org: 'A' | 'B',
    orgId: string,
    userId: string,
    role: Role,
    scopes: readonly Permission[],
  ): Promise<MatrixCaller> => {
    const k = await insertKey(db, orgId, userId, scopes);
    if (org === 'A') {
      orgAIds.add(k.id);
      orgAIds.add(k.prefix);
    }
    const rolePerms = new Set(ROLE_PERMISSIONS[role]);
    return {
      label,
      org,
      permissions: new Set(scopes.filter((s) => rolePerms.has(s))),
      credentials: async () => ({ bearer: k.token }),
    };
  };
  for (const role of ['owner', 'admin', 'operator', 'viewer'] as const) {
    callers.push(sessionCaller(`A ${role} (session)`, 'A', userIds[role]!, role));
    callers.push(await keyCaller(`A ${role} (key)`, 'A', orgA, userIds[role]!, role, ROLE_PERMISSIONS[role]));
  }
  callers.push(
    await keyCaller('A admin (key narrowed to runs:read)', 'A', orgA, userIds['admin']!, 'admin', ['runs:read']),
  );
  callers.push(
    await keyCaller('A viewer (key with scopes above its role)', 'A', orgA, userIds['viewer']!, 'viewer', [
      'users:write',
      'runs:write',
      'runs:read',
    ]),
  );
  callers.push(sessionCaller('B owner (session)', 'B', bOwnerId, 'owner'));
  callers.push(await keyCaller('B owner (key)', 'B', bOrgId, bOwnerId, 'owner', ROLE_PERMISSIONS.owner));

  // Org-A objects for every `:id` kind we know. Other modules' tables are filled directly;
  // if their schema moves on, the kind falls back to a random id (and the note says so).
  const objects = new Map<string, string>();
  objects.set('users', victim.body.user.id);
  const victimKey = await insertKey(db, orgA, victim.body.user.id, ['runs:read']);
  objects.set('api-keys', victimKey.id);
  orgAIds.add(victimKey.id).add(victimKey.prefix);
  const now = new Date().toISOString();
  const runnerId = randomUUID();
  const tryInsert = async (kind: string, id: string, insert: () => Promise<unknown>) => {
    try {
      await insert();
      objects.set(kind, id);
      orgAIds.add(id);
    } catch (e) {
      console.error(`authz-matrix: cannot create an org-A ${kind} object (${(e as Error).message}); using random ids`);
    }
  };
  await tryInsert('runners', runnerId, () =>
    db.kysely
      .insertInto('runners')
      .values({
        id: runnerId,
        org_id: orgA,
        name: 'matrix-runner',
        labels: '{}',
        status: 'offline',
        version: null,
        bootstrap_hash: null,
        bootstrap_expires_at: null,
        token_hash: null,
        token_prefix: null,
        state: null,
        created_at: now,
        last_seen_at: null,
        revoked_at: null,
        chain_seq: null,
        chain_hash: null,
      })
      .execute(),
  );
  const packId = randomUUID();
  await tryInsert('packs', packId, () =>
    db.kysely
      .insertInto('packs')
      .values({
        id: packId,
        org_id: orgA,
        name: 'matrix-pack',
        hash: `sha256:${'1'.repeat(64)}`,
        version: '1.0.0',
        status: 'pending',
        files: '[]',
        first_seen_at: now,
        first_seen_runner: runnerId,
        decided_by: null,
        decided_at: null,
        comment: null,
      })
      .execute(),
  );
  const runId = randomUUID();
  await tryInsert('runs', runId, () =>
    db.kysely
      .insertInto('runs')
      .values({
        id: runId,
        org_id: orgA,
        runner_id: runnerId,
        action: 'matrix.noop',
        pack_name: 'matrix-pack',
        pack_hash: `sha256:${'1'.repeat(64)}`,
        args: '{}',
        limits: '{}',
        reason: 'matrix',
        requested_by: JSON.stringify({ type: 'user', id: userIds['owner'], name: 'admin' }),
        status: 'success',
        exit_code: 0,
        created_at: now,
        dispatched_at: now,
        started_at: now,
        finished_at: now,
        duration_ms: 1,
        truncated: 0,
        output_bytes: 0,
        clamped: null,
        audit_hash: null,
        error_code: null,
        error_message: null,
        cancel_requested: 0,
      })
      .execute(),
  );
  // Policy objects of org A: a grant, an approver group and an enrolled approver key. (Rules are
  // left out: PUT /policy/rules/:id validates its body first, and no sample body passes the
  // rule refinements, so org B would get 400 rather than the 404 this matrix asserts.)
  const grantId = `grant_${randomUUID().slice(0, 8)}`;
  await tryInsert('grants', grantId, () =>
    db.kysely
      .insertInto('policy_grants')
      .values({
        id: grantId,
        org_id: orgA,
        subject_type: 'user',
        subject_id: victim.body.user.id,
        action: 'matrix.*',
        selector: '{}',
        arg_constraints: '{}',
        max_uses: null,
        uses: 0,
        expires_at: null,
        revoked_at: null,
        comment: null,
        created_by: 'admin',
        created_at: now,
      })
      .execute(),
  );
  const approverDb = db.kysely.withTables<ApproverTables>();
  const groupId = `grp_${randomUUID().slice(0, 8)}`;
  await tryInsert('approver-groups', groupId, () =>
    approverDb
      .insertInto('approver_groups')
      .values({ id: groupId, org_id: orgA, name: 'matrix-approvers', created_at: now })
      .execute(),
  );
  const approverKeyId = `matrix-key-${randomUUID().slice(0, 8)}`;
  await tryInsert('approver-keys', approverKeyId, () =>
    approverDb
      .insertInto('approver_keys')
      .values({
        org_id: orgA,
        key_id: approverKeyId,
        user_id: victim.body.user.id,
        subject: 'm-victim',
        public_key: 'A'.repeat(43),
        cert: '{}',
        not_after: now,
        enrolled_at: now,
        revoked_at: null,
        revoked_by: null,
      })
      .execute(),
  );
  // An audit event that belongs to org A only (the victim's creation).
  const ev = await db.kysely
    .selectFrom('audit_events')
    .select(['seq'])
    .where('org_id', '=', orgA)
    .where('kind', '=', 'user.created')
    .orderBy('seq', 'desc')
    .executeTakeFirst();
  if (ev !== undefined) objects.set('events', String(ev.seq));
  return { callers, objects, orgAIds };
}

// ---- the matrix ----

interface Outcome {
  route: string;
  caller: string;
  status: number;
  problem?: string;
}

const PERMISSION_DENIED = /^this needs the [a-z]+:[a-z]+ permission$/;

function urlFor(route: RouteSpec, objects: Map<string, string>): { url: string; known: boolean; ids: string[] } {
  let known = true;
  const ids: string[] = [];
  const segments = route.url.split('/');
  const url = segments
    .map((seg, i) => {
      if (!seg.startsWith(':')) return seg;
      const kind = segments[i - 1] ?? '';
      const id = objects.get(kind);
      if (id === undefined) known = false;
      const value = id ?? randomUUID();
      ids.push(value);
      return encodeURIComponent(value);
    })
    .join('/');
  return { url, known: known && ids.length > 0, ids };
}

function judge(
  route: RouteSpec,
  caller: MatrixCaller,
  res: { status: number; body: HttpResult['body']; text: string },
  target: ReturnType<typeof urlFor>,
  fx: Fixture,
): string | undefined {
  const { status } = res;
  const message: string = res.body?.error?.message ?? '';
  if (status >= 500) return `server error ${status}: ${res.text.slice(0, 200)}`;
  if (route.auth === 'public') {
    if (status === 401 && message === 'authentication required') return 'a public route asked for authentication';
    return undefined;
  }
  if (caller.permissions === undefined) return status === 401 ? undefined : `anonymous got ${status}, expected 401`;
  const needed = typeof route.auth === 'object' ? route.auth.permission : undefined;
  const permitted = needed === undefined || caller.permissions.has(needed);
  if (!permitted) return status === 403 ? undefined : `lacks ${needed} but got ${status}, expected 403`;
  if (status === 401) return 'permitted caller got 401';
  if (status === 403 && PERMISSION_DENIED.test(message)) return `permitted caller got the permission 403: ${message}`;
  const hasParams = target.ids.length > 0;
  if (caller.org === 'B' && hasParams && status >= 200 && status < 300)
    return `org B got ${status} for an org-A object (${target.url})`;
  if (caller.org === 'B' && target.known && status !== 404 && status !== 403)
    return `org B got ${status} for an org-A object, expected 404`;
  if (hasParams && !target.known && status >= 200 && status < 300)
    return `a random id for an unknown kind got ${status}, expected 404 or 400`;
  if (caller.org === 'B') {
    for (const id of fx.orgAIds) {
      if (!target.ids.includes(id) && res.text.includes(id)) return `response to org B contains org-A id ${id}`;
    }
  }
  return undefined;
}

for (const { name, create } of testDatabases()) {
  describe(`authorization matrix (${name})`, () => {
    let t: TestDb;
    let srv: TestServer;
    before(async () => {
      t = await create();
      srv = await startTestServer(t.url);
    });
    after(async () => {
      await srv?.stop();
      await t?.drop();
    });

    test('every route × every caller: 401 / 403 / tenancy decided before anything else', async (tc) => {
      const fx = await buildFixture(srv);
      const routes = [...srv.server.ctx.routes.routes];
      assert.ok(
        routes.length >= MIN_ROUTES,
        `only ${routes.length} routes registered; expected at least ${MIN_ROUTES}`,
      );
      const outcomes: Outcome[] = [];
      const noBody: string[] = [];
      // Unsafe methods last so reads see the objects before they are changed or revoked.
      const order = (r: RouteSpec) => (r.method === 'GET' ? 0 : r.method === 'DELETE' ? 2 : 1);
      routes.sort((a, b) => order(a) - order(b));
      for (const route of routes) {
        const { body, valid } = sampleBody(route);
        if (!valid) noBody.push(`${route.method} ${route.url}`);
        // Org B first: a same-org caller might legitimately delete or change the object.
        const callers = [...fx.callers].sort((a, b) => (a.org === 'B' ? -1 : 0) - (b.org === 'B' ? -1 : 0));
        for (const caller of callers) {
          const target = urlFor(route, fx.objects);
          const creds = await caller.credentials();
          const res = await call(srv.url, route.method, target.url, {
            ...creds,
            ...(body === undefined ? {} : { body }),
            timeoutMs: 10_000,
          });
          const problem = judge(route, caller, res, target, fx);
          outcomes.push({
            route: `${route.method} ${route.url}`,
            caller: caller.label,
            status: res.status,
            ...(problem === undefined ? {} : { problem }),
          });
        }
      }
      const failures = outcomes.filter((o) => o.problem !== undefined);
      tc.diagnostic(
        `${routes.length} routes × ${fx.callers.length} callers = ${outcomes.length} calls; known :id kinds: ${[...fx.objects.keys()].join(', ')}`,
      );
      if (noBody.length > 0)
        tc.diagnostic(`no valid sample body derived for: ${noBody.join('; ')} (permitted callers may get 400)`);
      assert.equal(outcomes.length, routes.length * fx.callers.length);
      assert.deepEqual(
        failures.map((f) => `${f.route} as ${f.caller}: ${f.problem}`),
        [],
      );
      // The matrix really exercised each decision.
      assert.ok(outcomes.some((o) => o.status === 401));
      assert.ok(outcomes.some((o) => o.status === 403));
      assert.ok(outcomes.some((o) => o.status === 404 && o.caller.startsWith('B ')));
      assert.ok(outcomes.some((o) => o.status >= 200 && o.status < 300 && o.caller.startsWith('A ')));
    });

    test('a forbidden caller gets 401/403 even with an invalid body', async () => {
      const routes = srv.server.ctx.routes.routes.filter((r) => r.body !== undefined && r.auth !== 'public');
      assert.ok(routes.length >= 5);
      const viewer = await insertKey(
        srv.server.ctx.db,
        srv.server.bootstrap.orgId,
        (
          await srv.server.ctx.db.kysely
            .selectFrom('users')
            .select('id')
            .where('username', '=', 'm-viewer')
            .executeTakeFirstOrThrow()
        ).id,
        ['runs:read'],
      );
      for (const route of routes) {
        const url = route.url.replace(/:[A-Za-z_]+/g, randomUUID());
        // (Syntactically broken JSON is refused with 400 by the body parser before any route
        // code runs, for everyone alike, so it reveals nothing; schema errors come after auth.)
        const anon = await call(srv.url, route.method, url, { body: { definitely: 'not valid', username: 7 } });
        assert.equal(anon.status, 401, `${route.method} ${route.url} anonymous with an invalid body`);
        if (typeof route.auth === 'object' && route.auth.permission !== 'runs:read') {
          const r = await call(srv.url, route.method, url, { bearer: viewer.token, body: { definitely: 'not valid' } });
          assert.equal(r.status, 403, `${route.method} ${route.url} as a runs:read key with an invalid body`);
        }
      }
    });
  });
}
