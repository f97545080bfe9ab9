import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { canonicalJson, hashEvent, verifyChain } from '@airlock/core';
import { sql } from 'kysely';
import { type TestDb, testDatabases } from '../testing/databases.js';
import { startTestServer, type TestServer } from '../testing/server.js';
import { checkpointSignatureValid, signingKeyPath } from './signing.js';
import { addUser, createApiKey, createOrg, ownerOf } from './test-support.js';

const CLI =
  process.env['AIRLOCK_REPO_ROOT'] !== undefined
    ? join(process.env['AIRLOCK_REPO_ROOT'], 'packages/cli/bin/airlock.js')
    : fileURLToPath(new URL('../../../cli/bin/airlock.js', import.meta.url));

function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, AIRLOCK_HOME: mkdtempSync(join(tmpdir(), 'airlock-cli-')), ...env } },
      (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
      },
    );
  });
}

interface Ctx {
  t: TestDb;
  srv: TestServer;
  /** owner of the first org, audit:read only */
  key: string;
  /** owner of the first org, full scopes */
  adminKey: string;
  other: { orgId: string; key: string };
}

async function get(
  c: Ctx,
  path: string,
  key = c.key,
): Promise<{ status: number; body: any; headers: Headers; text: string }> {
  const res = await fetch(`${c.srv.url}${path}`, { headers: { authorization: `Bearer ${key}` } });
  const text = await res.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, body, headers: res.headers, text };
}

async function post(c: Ctx, path: string, key: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${c.srv.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${key}` } });
  return { status: res.status, body: await res.json() };
}

async function setup(create: () => Promise<TestDb>): Promise<Ctx> {
  const t = await create();
  const srv = await startTestServer(t.url);
  const db = srv.server.ctx.db;
  const orgId = srv.server.bootstrap.orgId;
  const owner = await ownerOf(db, orgId);
  const key = await createApiKey(db, orgId, owner, ['audit:read']);
  const adminKey = await createApiKey(db, orgId, owner, ['audit:read', 'runs:read', 'users:write']);
  const o = await createOrg(db, 'globex');
  const otherKey = await createApiKey(db, o.orgId, o.userId, ['audit:read']);
  const audit = srv.server.ctx.audit;
  // A mix of events across two orgs and the instance level.
  await audit.record({
    orgId,
    kind: 'auth.login',
    actor: { type: 'user', id: owner, name: 'admin' },
    status: 'success',
  });
  await audit.record({
    orgId,
    kind: 'auth.login',
    actor: { type: 'user', id: 'u-mallory', name: 'mallory' },
    status: 'failure',
    error: { code: 'bad_password', message: 'wrong password' },
  });
  await audit.record({
    orgId: o.orgId,
    kind: 'run.result',
    actor: { type: 'user', id: o.userId, name: 'globex-user' },
    runner: 'g-1',
    action: 'linux.uptime',
    status: 'success',
    reason: 'globex secret',
  });
  await audit.record({
    orgId,
    kind: 'run.result',
    actor: { type: 'api_key', id: 'k1', name: 'admin (key)' },
    runner: 'web-1',
    action: 'linux.journal',
    status: 'failure',
    reason: 'nginx 502 since 10:02',
    exitCode: 1,
  });
  await audit.record({ orgId: null, kind: 'server.started', actor: { type: 'system', id: 'airlock' } });
  await audit.record({
    orgId,
    kind: 'pack.rejected',
    actor: { type: 'user', id: owner, name: 'admin' },
    data: { pack: 'linux-core', note: 'a|b=c\\d\nnext' },
  });
  await audit.record({
    orgId,
    kind: 'run.result',
    actor: { type: 'user', id: owner, name: 'admin' },
    runner: 'web-2',
    action: 'linux.uptime',
    status: 'validation_failed',
  });
  return { t, srv, key, adminKey, other: { orgId: o.orgId, key: otherKey } };
}

async function teardown(c: Ctx | undefined): Promise<void> {
  if (c === undefined) return;
  await c.srv.stop();
  await c.t.drop();
}

for (const { name, create } of testDatabases()) {
  describe(`audit API (${name})`, () => {
    let c: Ctx;
    before(async () => {
      c = await setup(create);
    });
    after(() => teardown(c));

    test('search: newest first, scoped to the org (instance events for first-org owners), cursor pages', async () => {
      const all = await get(c, '/api/v1/audit/events');
      assert.equal(all.status, 200);
      const kinds = all.body.events.map((e: { kind: string }) => e.kind);
      assert.deepEqual(kinds, [
        'run.result',
        'pack.rejected',
        'server.started',
        'run.result',
        'auth.login',
        'auth.login',
        'account.bootstrap',
      ]);
      assert.equal(all.body.next_cursor, null);
      assert.ok(!JSON.stringify(all.body).includes('globex secret'), 'another org is never visible');
      const seqs = all.body.events.map((e: { seq: number }) => e.seq);
      assert.deepEqual(
        seqs,
        [...seqs].sort((a: number, b: number) => b - a),
      );

      const p1 = await get(c, '/api/v1/audit/events?limit=3');
      assert.equal(p1.body.events.length, 3);
      assert.equal(typeof p1.body.next_cursor, 'string');
      const p2 = await get(c, `/api/v1/audit/events?limit=3&cursor=${p1.body.next_cursor}`);
      const p3 = await get(c, `/api/v1/audit/events?limit=3&cursor=${p2.body.next_cursor}`);
      assert.equal(p3.body.next_cursor, null);
      assert.deepEqual(
        [...p1.body.events, ...p2.body.events, ...p3.body.events].map((e: { seq: number }) => e.seq),
        seqs,
      );

      // The other org sees only its own event, not instance-level ones.
      const other = await get(c, '/api/v1/audit/events', c.other.key);
      assert.deepEqual(
        other.body.events.map((e: { reason: string }) => e.reason),
        ['globex secret'],
      );

      // A non-owner of the first org does not see instance-level events.
      const viewer = await addUser(c.srv.server.ctx.db, c.srv.server.bootstrap.orgId, 'vic', 'viewer');
      const vkey = await createApiKey(c.srv.server.ctx.db, c.srv.server.bootstrap.orgId, viewer, ['audit:read']);
      const v = await get(c, '/api/v1/audit/events', vkey);
      assert.equal(v.body.events.length, 6);
      assert.ok(v.body.events.every((e: { kind: string }) => e.kind !== 'server.started'));
    });

    test('search filters: kind prefix, status, actor id or name, runner, action, q, time range', async () => {
      const kinds = async (qs: string, key = c.key): Promise<string[]> => {
        const r = await get(c, `/api/v1/audit/events?${qs}`, key);
        assert.equal(r.status, 200, r.text);
        return r.body.events.map((e: { kind: string; seq: number }) => `${e.kind}`);
      };
      assert.deepEqual(await kinds('kind=auth.'), ['auth.login', 'auth.login']);
      assert.deepEqual(await kinds('kind=auth.login&status=failure'), ['auth.login']);
      assert.deepEqual(await kinds('actor=mallory'), ['auth.login']);
      assert.deepEqual(await kinds('actor=u-mallory'), ['auth.login']);
      assert.deepEqual(await kinds('actor=MALLORY'), []);
      assert.deepEqual(await kinds('runner=web-1'), ['run.result']);
      assert.deepEqual(await kinds('action=linux.uptime'), ['run.result']);
      assert.deepEqual(await kinds('q=NGINX%20502'), ['run.result']);
      assert.deepEqual(await kinds('q=globex%20secret'), [], 'free text never crosses orgs');
      assert.deepEqual(await kinds('q=globex%20secret', c.other.key), ['run.result']);
      assert.deepEqual(await kinds('q=a|b=c'), ['pack.rejected']);
      assert.deepEqual(await kinds('q=%25'), [], 'LIKE wildcards are literal');
      const future = new Date(Date.now() + 3600_000).toISOString();
      assert.deepEqual(await kinds(`from=${encodeURIComponent(future)}`), []);
      assert.equal((await kinds(`to=${encodeURIComponent(future)}&from=2000-01-01T00:00:00%2B02:00`)).length, 7);
      const bad = await get(c, '/api/v1/audit/events?limit=501&status=nope&bogus=1');
      assert.equal(bad.status, 400);
      const badCursor = await get(c, '/api/v1/audit/events?cursor=xyz');
      assert.equal(badCursor.status, 400);
    });

    test('one event by seq; 404 for another org and unknown seqs; 401/403 without the permission', async () => {
      const mine = await get(c, '/api/v1/audit/events?kind=pack.');
      const seq = mine.body.events[0].seq;
      const one = await get(c, `/api/v1/audit/events/${seq}`);
      assert.equal(one.status, 200);
      assert.equal(hashEvent(one.body), one.body.hash);
      assert.equal((await get(c, `/api/v1/audit/events/${seq}`, c.other.key)).status, 404);
      assert.equal((await get(c, '/api/v1/audit/events/99999')).status, 404);
      const noScope = await createApiKey(
        c.srv.server.ctx.db,
        c.srv.server.bootstrap.orgId,
        await ownerOf(c.srv.server.ctx.db, c.srv.server.bootstrap.orgId),
        ['runs:read'],
      );
      assert.equal((await get(c, '/api/v1/audit/events', noScope)).status, 403);
      assert.equal((await get(c, '/api/v1/audit/export', noScope)).status, 403);
      const anon = await fetch(`${c.srv.url}/api/v1/audit/events`);
      assert.equal(anon.status, 401);
    });

    test('export NDJSON: oldest first, every event verbatim, elided stubs for other orgs, cursor pages equal the whole', async () => {
      const whole = await get(c, '/api/v1/audit/export');
      assert.equal(whole.status, 200);
      assert.match(whole.headers.get('content-type') ?? '', /ndjson/);
      assert.equal(whole.headers.get('x-has-more'), 'false');
      const lines = whole.text
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l));
      const trailer = lines.pop();
      assert.equal(trailer.type, 'cursor');
      assert.equal(trailer.next_cursor, whole.headers.get('x-next-cursor'));
      const chain = lines.filter((l) => l.type !== 'checkpoint');
      assert.deepEqual(
        chain.map((l) => l.seq),
        [0, 1, 2, 3, 4, 5, 6, 7],
      );
      const elided = chain.filter((l) => l.type === 'elided');
      assert.equal(elided.length, 1);
      assert.deepEqual(Object.keys(elided[0]).sort(), ['hash', 'prev', 'seq', 'type']);
      assert.ok(!whole.text.includes('globex secret'));
      // Without the elided one the rest is a valid chain through it.
      const full = chain.filter((l) => l.type === undefined);
      for (const e of full) assert.equal(hashEvent(e), e.hash);

      // Pages of 3 concatenate to the same chain lines.
      let cursor: string | undefined;
      const paged: unknown[] = [];
      for (let i = 0; i < 10; i++) {
        const r = await get(c, `/api/v1/audit/export?limit=3${cursor === undefined ? '' : `&cursor=${cursor}`}`);
        const ls = r.text
          .trimEnd()
          .split('\n')
          .map((l) => JSON.parse(l));
        const tail = ls.pop();
        assert.equal(tail.type, 'cursor');
        paged.push(...ls.filter((l) => l.type !== 'checkpoint'));
        assert.equal(tail.has_more, r.headers.get('x-has-more') === 'true');
        cursor = r.headers.get('x-next-cursor') ?? undefined;
        if (!tail.has_more) break;
      }
      assert.deepEqual(paged, chain);
      // The cursor of the last page resumes after it: nothing new yet.
      const again = await get(c, `/api/v1/audit/export?cursor=${cursor}`);
      assert.deepEqual(
        again.text
          .trimEnd()
          .split('\n')
          .map((l) => JSON.parse(l).type),
        ['cursor'],
      );
      await c.srv.server.ctx.audit.record({
        orgId: c.srv.server.bootstrap.orgId,
        kind: 'test.later',
        actor: { type: 'system', id: 'airlock' },
      });
      const later = await get(c, `/api/v1/audit/export?cursor=${cursor}`);
      assert.deepEqual(
        later.text
          .trimEnd()
          .split('\n')
          .map((l) => JSON.parse(l).kind ?? JSON.parse(l).type),
        ['test.later', 'cursor'],
      );

      // The other org: its event in full, everything else elided; same chain positions.
      const theirs = await get(c, '/api/v1/audit/export', c.other.key);
      const tl = theirs.text
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l))
        .filter((l) => l.type !== 'cursor' && l.type !== 'checkpoint');
      assert.equal(tl.filter((l) => l.type === undefined).length, 1);
      assert.equal(tl.filter((l) => l.type === 'elided').length, 8);
      assert.ok(!theirs.text.includes('nginx'));
    });

    test('export CEF: one escaped line per event in scope, with severity', async () => {
      const r = await get(c, '/api/v1/audit/export?format=cef');
      assert.equal(r.status, 200);
      const lines = r.text.trimEnd().split('\n');
      assert.ok(lines.every((l) => l.startsWith('CEF:0|airlock|airlock|')));
      assert.equal(lines.length, 8, 'the other org is left out');
      const rejected = lines.find((l) => l.includes('|pack.rejected|'));
      assert.ok(rejected !== undefined);
      assert.match(rejected, /\|7\|/);
      assert.ok(rejected.includes('a|b\\=c\\\\\\\\d\\\\nnext'), rejected); // JSON in msg, then CEF-escaped
      const login = lines.find((l) => l.includes('auth.login') && l.includes('outcome=failure'));
      assert.ok(login?.includes('suser=mallory'));
      assert.match(login ?? '', /\|7\|/);
      assert.match(lines.find((l) => l.includes('validation_failed')) ?? '', /\|6\|/);
    });

    test('signing key: 0600 file, key_id from the raw public key, PEM download', async () => {
      const path = signingKeyPath(c.srv.home);
      assert.equal(statSync(path).mode & 0o777, 0o600);
      const pk = await get(c, '/api/v1/audit/public-key');
      assert.equal(pk.status, 200);
      assert.match(pk.body.key_id, /^[0-9a-f]{16}$/);
      assert.match(pk.body.public_key, /BEGIN PUBLIC KEY/);
      const pem = await get(c, '/api/v1/audit/public-key?format=pem');
      assert.equal(pem.text, pk.body.public_key);
      const { createHash, createPublicKey } = await import('node:crypto');
      const raw = Buffer.from(createPublicKey(pk.body.public_key).export({ format: 'jwk' }).x as string, 'base64url');
      assert.equal(raw.length, 32);
      assert.equal(createHash('sha256').update(raw).digest('hex').slice(0, 16), pk.body.key_id);
    });
  });

  describe(`audit verify and checkpoints (${name})`, () => {
    let c: Ctx | undefined;
    after(() => teardown(c));

    test('verify ok; checkpoints signed on demand (admins only) and listed; tampered rows reported by index', async () => {
      c = await setup(create);
      const db = c.srv.server.ctx.db;
      const ok = await get(c, '/api/v1/audit/verify');
      assert.equal(ok.status, 200);
      assert.equal(ok.body.ok, true);
      assert.equal(ok.body.count, 8);
      assert.equal(ok.body.head.seq, 7);

      // Checkpoints: viewers may not sign; admins may; no new one while the head stands still.
      const viewer = await addUser(db, c.srv.server.bootstrap.orgId, 'vera', 'viewer');
      const vkey = await createApiKey(db, c.srv.server.bootstrap.orgId, viewer, ['audit:read']);
      assert.equal((await post(c, '/api/v1/audit/checkpoints', vkey)).status, 403);
      const cp1 = await post(c, '/api/v1/audit/checkpoints', c.adminKey);
      assert.equal(cp1.status, 201);
      assert.equal(cp1.body.checkpoint.seq, 7);
      assert.equal(cp1.body.checkpoint.hash, ok.body.head.hash);
      const again = await post(c, '/api/v1/audit/checkpoints', c.adminKey);
      assert.equal(again.status, 200);
      assert.equal(again.body.created, false);
      const pk = await get(c, '/api/v1/audit/public-key');
      assert.ok(checkpointSignatureValid(cp1.body.checkpoint, pk.body.public_key));
      assert.equal(cp1.body.checkpoint.key_id, pk.body.key_id);
      // The signature covers exactly canonical JSON of {seq, hash, time, key_id}.
      const { verify, createPublicKey } = await import('node:crypto');
      const { signature, ...payload } = cp1.body.checkpoint;
      assert.ok(
        verify(
          null,
          Buffer.from(canonicalJson(payload)),
          createPublicKey(pk.body.public_key),
          Buffer.from(signature, 'base64'),
        ),
      );
      const list = await get(c, '/api/v1/audit/checkpoints');
      assert.equal(list.body.checkpoints.length, 1);
      const v2 = await get(c, '/api/v1/audit/verify');
      assert.equal(v2.body.ok, true);
      assert.equal(v2.body.checkpoints.count, 1);

      // CLI against the server: ok, then broken after an edit.
      const good = await cli(['audit', 'verify', '--server', c.srv.url, '--api-key', c.key]);
      assert.equal(good.code, 0, good.stderr + good.stdout);
      assert.match(good.stdout, /ok, 8 events/);
      const viaEnv = await cli(['audit', 'verify', '--server', '--json'], {
        AIRLOCK_SERVER: c.srv.url,
        AIRLOCK_API_KEY: c.key,
      });
      assert.equal(viaEnv.code, 0, viaEnv.stderr);
      assert.equal(JSON.parse(viaEnv.stdout).ok, true);

      // Edit a body in the database (content changed, hash kept).
      const row = await db.kysely
        .selectFrom('audit_events')
        .select('body')
        .where('seq', '=', 3)
        .executeTakeFirstOrThrow();
      await db.kysely
        .updateTable('audit_events')
        .set({ body: row.body.replace('globex secret', 'nothing to see') })
        .where('seq', '=', 3)
        .execute();
      const bad = await get(c, '/api/v1/audit/verify');
      assert.equal(bad.body.ok, false);
      assert.equal(bad.body.index, 3);
      assert.equal(bad.body.reason, 'edited');
      const cliBad = await cli(['audit', 'verify', '--server', c.srv.url, '--api-key', c.key]);
      assert.equal(cliBad.code, 1);
      assert.match(cliBad.stdout, /BROKEN at index 3 \(edited\)/);
      await db.kysely.updateTable('audit_events').set({ body: row.body }).where('seq', '=', 3).execute();
      assert.equal((await get(c, '/api/v1/audit/verify')).body.ok, true);

      // Edit with a recomputed hash (body and columns): the next link breaks.
      const e3 = JSON.parse(row.body);
      const { hash: _h, ...rest } = e3;
      const forged = { ...rest, reason: 'forged' };
      const forgedHash = hashEvent(forged);
      await db.kysely
        .updateTable('audit_events')
        .set({ body: JSON.stringify({ ...forged, hash: forgedHash }), hash: forgedHash })
        .where('seq', '=', 3)
        .execute();
      const bad2 = await get(c, '/api/v1/audit/verify');
      assert.equal(bad2.body.ok, false);
      assert.equal(bad2.body.index, 3);
      await db.kysely.updateTable('audit_events').set({ body: row.body, hash: e3.hash }).where('seq', '=', 3).execute();

      // Delete a row in the middle.
      const r5 = await db.kysely.selectFrom('audit_events').selectAll().where('seq', '=', 5).executeTakeFirstOrThrow();
      await db.kysely.deleteFrom('audit_events').where('seq', '=', 5).execute();
      const del = await get(c, '/api/v1/audit/verify');
      assert.equal(del.body.ok, false);
      assert.equal(del.body.index, 5);
      assert.equal(del.body.reason, 'deleted');
      await db.kysely.insertInto('audit_events').values(r5).execute();

      // Delete the tail below the latest checkpoint: only the checkpoint shows it.
      const tail = await db.kysely.selectFrom('audit_events').selectAll().where('seq', '>=', 6).execute();
      await db.kysely.deleteFrom('audit_events').where('seq', '>=', 6).execute();
      const trunc = await get(c, '/api/v1/audit/verify');
      assert.equal(trunc.body.ok, false);
      assert.equal(trunc.body.reason, 'truncated');
      assert.equal(trunc.body.index, 6);
      await db.kysely.insertInto('audit_events').values(tail).execute();

      // A forged checkpoint signature.
      await db.kysely
        .updateTable('audit_checkpoints')
        .set({ hash: `sha256:${'f'.repeat(64)}` })
        .execute();
      const sig = await get(c, '/api/v1/audit/verify');
      assert.equal(sig.body.ok, false);
      assert.equal(sig.body.reason, 'signature');
    });

    test('verification pages through long chains (more than one chunk) and reports the global index', async () => {
      const t = await create();
      const srv = await startTestServer(t.url);
      try {
        const db = srv.server.ctx.db;
        const owner = await ownerOf(db, srv.server.bootstrap.orgId);
        const key = await createApiKey(db, srv.server.bootstrap.orgId, owner, ['audit:read']);
        for (let i = 0; i < 1100; i++) {
          await srv.server.ctx.audit.record({
            orgId: srv.server.bootstrap.orgId,
            kind: 'test.bulk',
            actor: { type: 'system', id: 'airlock' },
            data: { i },
          });
        }
        const cc = { srv, key } as unknown as Ctx;
        const ok = await get(cc, '/api/v1/audit/verify');
        assert.equal(ok.body.ok, true, JSON.stringify(ok.body));
        assert.equal(ok.body.count, 1101);
        // Rewrite the last event of the first chunk with a recomputed hash: reported at 999.
        const row = await db.kysely
          .selectFrom('audit_events')
          .select('body')
          .where('seq', '=', 999)
          .executeTakeFirstOrThrow();
        const { hash: _h, ...rest } = JSON.parse(row.body);
        const forged = { ...rest, data: { i: -1 } };
        const h = hashEvent(forged);
        await db.kysely
          .updateTable('audit_events')
          .set({ body: JSON.stringify({ ...forged, hash: h }), hash: h })
          .where('seq', '=', 999)
          .execute();
        const bad = await get(cc, '/api/v1/audit/verify');
        assert.equal(bad.body.ok, false);
        assert.equal(bad.body.index, 999);
        assert.equal(bad.body.reason, 'edited');
        // Whole-chain export pages stream the same events.
        const ex = await get(cc, '/api/v1/audit/export?limit=10000');
        const evs = ex.text
          .trimEnd()
          .split('\n')
          .map((l) => JSON.parse(l))
          .filter((l) => l.type === undefined);
        assert.equal(evs.length, 1101);
        const res = verifyChain(evs);
        assert.equal(res.ok, false);
      } finally {
        await srv.stop();
        await t.drop();
      }
    });

    test('the checkpoint timer signs when the head moved, and once more at shutdown', async () => {
      const t = await create();
      const prev = process.env['AIRLOCK_AUDIT_CHECKPOINT_S'];
      process.env['AIRLOCK_AUDIT_CHECKPOINT_S'] = '0.2';
      const home = mkdtempSync(join(tmpdir(), 'airlock-home-'));
      try {
        const srv = await startTestServer(t.url, home);
        const db = srv.server.ctx.db;
        const count = async (): Promise<number> =>
          (
            await db.kysely
              .selectFrom('audit_checkpoints')
              .select(sql<number>`count(*)`.as('n'))
              .executeTakeFirstOrThrow()
          ).n;
        await new Promise((r) => setTimeout(r, 700));
        assert.equal(Number(await count()), 1, 'one checkpoint for the bootstrap head, none while it stands still');
        await srv.server.ctx.audit.record({ orgId: null, kind: 'test.tick', actor: { type: 'system', id: 'airlock' } });
        await new Promise((r) => setTimeout(r, 600));
        assert.equal(Number(await count()), 2);
        const keyPem = readFileSync(signingKeyPath(home), 'utf8');
        await srv.server.ctx.audit.record({
          orgId: null,
          kind: 'test.before-stop',
          actor: { type: 'system', id: 'airlock' },
        });
        process.env['AIRLOCK_AUDIT_CHECKPOINT_S'] = '3600';
        await srv.stop();
        // Restart on the same home: same key; the shutdown checkpoint covers the last event.
        const srv2 = await startTestServer(t.url, home);
        try {
          assert.equal(readFileSync(signingKeyPath(home), 'utf8'), keyPem);
          const db2 = srv2.server.ctx.db;
          const latest = await db2.kysely
            .selectFrom('audit_checkpoints')
            .selectAll()
            .orderBy('seq', 'desc')
            .limit(1)
            .executeTakeFirstOrThrow();
          const head = await srv2.server.ctx.audit.head();
          assert.equal(Number(latest.seq), head.seq);
        } finally {
          await srv2.stop();
        }
      } finally {
        if (prev === undefined) delete process.env['AIRLOCK_AUDIT_CHECKPOINT_S'];
        else process.env['AIRLOCK_AUDIT_CHECKPOINT_S'] = prev;
        rmSync(home, { recursive: true, force: true });
        await t.drop();
      }
    });
  });

  describe(`offline verification of an export (${name})`, () => {
    let c: Ctx | undefined;
    let dir: string;
    after(async () => {
      await teardown(c);
      rmSync(dir, { recursive: true, force: true });
    });

    test('ok, edited, deleted, truncated below the latest checkpoint, altered checkpoint, wrong key', async () => {
      c = await setup(create);
      dir = mkdtempSync(join(tmpdir(), 'airlock-export-'));
      const cp = await post(c, '/api/v1/audit/checkpoints', c.adminKey);
      assert.equal(cp.status, 201);
      // Two more events after the checkpoint: an unsigned tail.
      await c.srv.server.ctx.audit.record({
        orgId: c.srv.server.bootstrap.orgId,
        kind: 'test.after',
        actor: { type: 'system', id: 'airlock' },
      });
      await c.srv.server.ctx.audit.record({
        orgId: c.srv.server.bootstrap.orgId,
        kind: 'test.after',
        actor: { type: 'system', id: 'airlock' },
      });
      const keyFile = join(dir, 'server.pem');
      writeFileSync(keyFile, (await get(c, '/api/v1/audit/public-key?format=pem')).text);
      const exportFile = join(dir, 'export.ndjson');
      const dl = await cli(['audit', 'export', '--server', c.srv.url, '--api-key', c.key, '--out', exportFile]);
      assert.equal(dl.code, 0, dl.stderr);
      const text = readFileSync(exportFile, 'utf8');
      const lines = text.trimEnd().split('\n');
      assert.ok(lines.some((l) => l.includes('"type":"checkpoint"')));

      // The CLI's verifier, in-process (spawning the CLI for every case is slow); the
      // command itself is run below for the ok and edited cases.
      const { verifyExport } = (await import(
        pathToFileURL(CLI.replace(/bin\/airlock\.js$/, 'dist/commands/audit.js')).href
      )) as {
        verifyExport: (text: string, keys: string[]) => { ok: boolean };
      };
      const check = async (content: string, key = keyFile): Promise<{ code: number; out: any }> => {
        const out = verifyExport(content, [readFileSync(key, 'utf8')]);
        return { code: out.ok ? 0 : 1, out };
      };
      const ok = await check(text);
      assert.equal(ok.code, 0, JSON.stringify(ok.out));
      assert.equal(ok.out.ok, true);
      assert.equal(ok.out.events, 9);
      assert.equal(ok.out.elided, 1);
      assert.equal(ok.out.checkpoints, 1);
      assert.equal(ok.out.latest_checkpoint.seq, 7);
      assert.equal(ok.out.unsigned_tail, 2);
      const human = await cli(['audit', 'verify', '--export', exportFile, '--key', keyFile]);
      assert.equal(human.code, 0);
      assert.match(
        human.stdout,
        /ok, 9 events \+ 1 elided, head sha256:[0-9a-f]{64}, 1 checkpoint verified, latest at seq 7/,
      );

      const idx = (seq: number): number =>
        lines.findIndex((l) => l.startsWith('{') && JSON.parse(l).seq === seq && JSON.parse(l).type === undefined);
      // Edited: content changed.
      const edited = [...lines];
      edited[idx(4)] = (edited[idx(4)] as string).replace('nginx 502', 'all fine');
      const e = await check(`${edited.join('\n')}\n`);
      assert.equal(e.code, 1);
      assert.equal(e.out.reason, 'edited');
      assert.equal(e.out.seq, 4);
      const editedFile = join(dir, 'edited.ndjson');
      writeFileSync(editedFile, `${edited.join('\n')}\n`);
      const cliEdited = await cli(['audit', 'verify', '--export', editedFile, '--key', keyFile]);
      assert.equal(cliEdited.code, 1);
      assert.match(cliEdited.stdout, /BROKEN at line \d+ \(seq 4\) \(edited\)/);
      const noKey = await cli(['audit', 'verify', '--export', editedFile]);
      assert.equal(noKey.code, 1);
      assert.match(noKey.stderr, /--key/);
      // Edited and every later hash recomputed: only the signed checkpoint shows it.
      const rechained = [...lines];
      let prevHash: string | undefined;
      for (let i = 0; i < rechained.length; i++) {
        const o = JSON.parse(rechained[i] as string);
        if (o.type === 'elided') prevHash = o.hash;
        if (o.type !== undefined) continue;
        if (o.seq < 4) {
          prevHash = o.hash;
          continue;
        }
        const { hash: _h, ...body } = o;
        const nb = { ...body, prev: prevHash, ...(o.seq === 4 ? { reason: 'all fine' } : {}) };
        const nh = hashEvent(nb);
        rechained[i] = JSON.stringify({ ...nb, hash: nh });
        prevHash = nh;
      }
      const rc = await check(`${rechained.join('\n')}\n`);
      assert.equal(rc.code, 1);
      assert.equal(rc.out.reason, 'edited');
      assert.equal(rc.out.seq, 7);
      // Deleted: one event gone from the middle.
      const deleted = lines.filter((_l, i) => i !== idx(5));
      const d = await check(`${deleted.join('\n')}\n`);
      assert.equal(d.code, 1);
      assert.equal(d.out.reason, 'deleted');
      assert.equal(d.out.seq, 6);
      // Truncated below the latest checkpoint (seq 7): keep events up to seq 5.
      const truncated = lines.filter((l) => {
        const o = JSON.parse(l);
        return o.type === 'checkpoint' || (o.type !== 'cursor' && o.seq <= 5);
      });
      const tr = await check(`${truncated.join('\n')}\n`);
      assert.equal(tr.code, 1);
      assert.equal(tr.out.reason, 'truncated');
      // Truncating only the unsigned tail (after seq 7) is not detectable, and is reported as such.
      const tailCut = lines.filter((l) => {
        const o = JSON.parse(l);
        return o.type === 'checkpoint' || (o.type !== 'cursor' && o.seq <= 7);
      });
      const tc = await check(`${tailCut.join('\n')}\n`);
      assert.equal(tc.code, 0);
      assert.equal(tc.out.unsigned_tail, 0);
      // A cut mid-line is malformed.
      const cut = await check(text.slice(0, text.length - 40));
      assert.equal(cut.code, 1);
      assert.equal(cut.out.reason, 'malformed');
      // An altered checkpoint.
      const alteredCp = lines.map((l) => (l.includes('"type":"checkpoint"') ? l.replace(/"seq":7/, '"seq":6') : l));
      const ac = await check(`${alteredCp.join('\n')}\n`);
      assert.equal(ac.code, 1);
      assert.equal(ac.out.reason, 'signature');
      // Another key.
      const { generateKeyPairSync } = await import('node:crypto');
      const otherKey = join(dir, 'other.pem');
      writeFileSync(
        otherKey,
        generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }).toString(),
      );
      const wk = await check(text, otherKey);
      assert.equal(wk.code, 1);
      assert.equal(wk.out.reason, 'signature');

      // The other org's export, with elided stubs, verifies too.
      const theirs = await get(c, '/api/v1/audit/export', c.other.key);
      const th = await check(theirs.text);
      assert.equal(th.code, 0, JSON.stringify(th.out));
      assert.equal(th.out.events, 1);
      assert.equal(th.out.elided, 9);
      // Replacing an elided stub's link is detected.
      const thLines = theirs.text.trimEnd().split('\n');
      const stubAt = thLines.findIndex((l) => l.includes('"type":"elided"') && JSON.parse(l).seq === 2);
      thLines[stubAt] = JSON.stringify({ ...JSON.parse(thLines[stubAt] as string), prev: `sha256:${'0'.repeat(64)}` });
      const thb = await check(`${thLines.join('\n')}\n`);
      assert.equal(thb.code, 1);
      assert.equal(thb.out.reason, 'edited');
    });
  });
}
