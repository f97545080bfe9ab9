// Policy, approvals, grants and signed dispatch through the API, with an in-process runner,
// on SQLite and PostgreSQL.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type ApproverCert, certBytes, dispatchBytes } from '@airlock/core';
import {
  defaultRunnerConfig,
  generateSigningKey,
  type RunningRunner,
  redeemBootstrapKey,
  signRaw,
  startRunner,
} from '@airlock/runner';
import { testDatabases } from '../testing/databases.js';
import { apiClient, mintTestKey, ownerId } from '../testing/keys.js';
import { startTestServer, type TestServer } from '../testing/server.js';
import { addUser, keyIdOf, writeOpsPack } from './testing/fixtures.js';
import { webhookSignature } from './webhook.js';

const waitFor = async <T>(fn: () => Promise<T | undefined | false>, ms = 15_000): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) assert.fail('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
};
const FINAL = ['success', 'failure', 'validation_failed', 'error', 'timeout', 'cancelled'];

for (const { name, create } of testDatabases()) {
  describe(`policy, approvals, grants, signed dispatch (${name})`, () => {
    let t: Awaited<ReturnType<typeof create>>;
    let srv: TestServer;
    let dir: string;
    let admin: ReturnType<typeof apiClient>;
    let agent: ReturnType<typeof apiClient>;
    let agentKeyId: string;
    let agentUserId: string;
    let second: ReturnType<typeof apiClient>;
    let third: ReturnType<typeof apiClient>;
    let agentSelf: ReturnType<typeof apiClient>;
    let runner: RunningRunner;
    const root = generateSigningKey();
    const hooks: { headers: IncomingMessage['headers']; body: string }[] = [];
    const hookServer = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        hooks.push({ headers: req.headers, body });
        res.end('ok');
      });
    });

    const run = (
      api: ReturnType<typeof apiClient>,
      action: string,
      target = 'box-1',
      extra: Record<string, unknown> = {},
    ) => api('POST', '/api/v1/runs', { runner: 'pol-1', action, args: { target }, reason: 'policy test', ...extra });
    const final = (id: string) =>
      waitFor(async () => {
        const r = (await admin('GET', `/api/v1/runs/${id}`)).body;
        return FINAL.includes(r.status) ? r : undefined;
      });
    const auditKinds = async (
      id: string,
    ): Promise<{ kind: string; data?: Record<string, unknown>; principal: { name?: string } }[]> => {
      const ev = await srv.server.ctx.db.kysely
        .selectFrom('audit_events')
        .select('body')
        .where('id', '=', id)
        .orderBy('seq')
        .execute();
      return ev.map((e) => JSON.parse(e.body));
    };

    before(async () => {
      t = await create();
      process.env['AIRLOCK_APPROVAL_SWEEP_MS'] = '100';
      srv = await startTestServer(t.url);
      const db = srv.server.ctx.db;
      const org = srv.server.bootstrap.orgId;
      admin = apiClient(
        srv.url,
        await mintTestKey(db, org, await ownerId(db, org), [
          'runs:read',
          'runs:write',
          'runners:read',
          'runners:write',
          'packs:read',
          'packs:trust',
          'audit:read',
          'users:read',
          'users:write',
          'keys:write',
        ]),
      );
      const a = await addUser(db, org, 'agent-owner', 'operator', ['runs:read', 'runs:write']);
      agent = apiClient(srv.url, a.key);
      agentKeyId = await keyIdOf(db, a.key);
      agentUserId = a.id;
      agentSelf = apiClient(srv.url, await mintTestKey(db, org, a.id, ['runs:read', 'runs:write']));
      second = apiClient(srv.url, (await addUser(db, org, 'alice', 'admin')).key);
      third = apiClient(srv.url, (await addUser(db, org, 'bob', 'admin')).key);
      await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', r));
      dir = mkdtempSync(join(tmpdir(), 'airlock-pol-'));
      const packDir = writeOpsPack(dir);
      const created = await admin('POST', '/api/v1/runners', { name: 'pol-1', labels: { env: 'prod', team: 'web' } });
      const reg = await redeemBootstrapKey(srv.url, created.body.bootstrap_key);
      runner = startRunner({
        config: {
          ...defaultRunnerConfig({}),
          name: 'pol-1',
          packDirs: [packDir],
          logPath: join(dir, 'runner', 'events.jsonl'),
          signing: { rootPublicKey: root.publicKey, requireTiers: ['destructive'] },
        },
        serverUrl: srv.url,
        token: reg.token,
        backoff: { minMs: 50, maxMs: 500 },
      });
      await waitFor(async () => (await admin('GET', `/api/v1/runners/${reg.runnerId}`)).body.online === true);
      const pack = (await admin('GET', '/api/v1/packs')).body.packs[0];
      assert.equal((await admin('POST', `/api/v1/packs/${pack.id}/trust`, { comment: 'test' })).status, 200);
    });
    after(async () => {
      delete process.env['AIRLOCK_APPROVAL_SWEEP_MS'];
      runner?.stop();
      await srv.stop();
      await t.drop();
      hookServer.close();
      rmSync(dir, { recursive: true, force: true });
    });

    test('explain: defaults per tier, risk from the runner hello', async () => {
      const look = await admin(
        'GET',
        `/api/v1/policy/explain?runner=pol-1&action=ops.look&args=${encodeURIComponent('{"target":"x"}')}`,
      );
      assert.equal(look.status, 200, JSON.stringify(look.body));
      assert.deepEqual([look.body.decision, look.body.rule, look.body.risk], ['allow', 'default:read', 'read']);
      const wipe = await admin('GET', '/api/v1/policy/explain?runner=pol-1&action=ops.wipe&user=agent-owner');
      assert.deepEqual(
        [wipe.body.decision, wipe.body.rule, wipe.body.approvers, wipe.body.approver_role],
        ['require_approval', 'default:destructive', 1, 'admin'],
      );
      const denied = await agent('GET', '/api/v1/policy/explain?runner=pol-1&action=ops.wipe&user=alice');
      assert.equal(denied.status, 403, 'explaining for someone else needs users:read');
    });

    test('rules: create, explain, update, delete, each audited with before and after; bad rules name the field', async () => {
      const bad = await admin('POST', '/api/v1/policy/rules', { kind: 'override', decision: 'deny' });
      assert.equal(bad.status, 400);
      assert.ok(bad.body.error.fields.some((f: { field: string }) => f.field === 'body.action'));
      const badRe = await admin('POST', '/api/v1/policy/rules', {
        kind: 'override',
        action: 'ops.touch',
        pin_args: { target: '(' },
      });
      assert.equal(badRe.status, 400);
      const r = await admin('POST', '/api/v1/policy/rules', {
        kind: 'tier',
        tier: 'change',
        selector: { env: 'prod' },
        decision: 'deny',
        comment: 'freeze',
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      const ex = await admin('GET', '/api/v1/policy/explain?runner=pol-1&action=ops.touch');
      assert.deepEqual([ex.body.decision, ex.body.rule], ['deny', `tier:${r.body.id}`]);
      const refused = await run(agent, 'ops.touch');
      assert.equal(refused.status, 403);
      assert.match(refused.body.error.message, new RegExp(`tier:${r.body.id}`));
      const up = await admin('PUT', `/api/v1/policy/rules/${r.body.id}`, {
        kind: 'tier',
        tier: 'change',
        selector: { env: 'staging' },
        decision: 'deny',
      });
      assert.equal(up.status, 200);
      assert.equal((await admin('GET', '/api/v1/policy/explain?runner=pol-1&action=ops.touch')).body.decision, 'allow');
      assert.equal((await admin('DELETE', `/api/v1/policy/rules/${r.body.id}`)).status, 204);
      const kinds = (await auditKinds(r.body.id)).map((e) => e.kind);
      assert.deepEqual(kinds, ['policy.rule_created', 'policy.rule_updated', 'policy.rule_deleted']);
      const updated = (await auditKinds(r.body.id))[1]!;
      assert.deepEqual((updated.data!['before'] as { selector: unknown }).selector, { env: 'prod' });
      assert.deepEqual((updated.data!['after'] as { selector: unknown }).selector, { env: 'staging' });
    });

    test('overrides bound limits and pin arguments', async () => {
      const o = await admin('POST', '/api/v1/policy/rules', {
        kind: 'override',
        action: 'ops.look',
        limits: { timeout_s: 3 },
        pin_args: { target: 'box-[0-9]+' },
      });
      assert.equal(o.status, 201, JSON.stringify(o.body));
      const ok = await run(agent, 'ops.look', 'box-7', { limits: { timeout_s: 20 } });
      assert.equal(ok.status, 201, JSON.stringify(ok.body));
      assert.equal(ok.body.limits.timeout_s, 3);
      const pinned = await run(agent, 'ops.look', 'other');
      assert.equal(pinned.status, 403);
      assert.match(pinned.body.error.message, new RegExp(`override:${o.body.id}`));
      await admin('DELETE', `/api/v1/policy/rules/${o.body.id}`);
    });

    test('scopes: a user scope shrinks every key at once; a key only narrows', async () => {
      const out = await admin('PUT', '/api/v1/policy/scopes/users/agent-owner', { selector: { env: 'staging' } });
      assert.equal(out.status, 200, JSON.stringify(out.body));
      const refused = await run(agent, 'ops.look');
      assert.equal(refused.status, 403);
      assert.match(refused.body.error.message, /scope:user/);
      // Runner lists and run history show only what is in scope.
      const lister = apiClient(
        srv.url,
        await mintTestKey(srv.server.ctx.db, srv.server.bootstrap.orgId, agentUserId, ['runners:read', 'runs:read']),
      );
      assert.deepEqual((await lister('GET', '/api/v1/runners')).body.runners, []);
      assert.deepEqual((await lister('GET', '/api/v1/runs')).body.runs, []);
      assert.equal((await admin('GET', '/api/v1/runners')).body.runners.length, 1, 'admin has no scope');
      // The key tries to widen: it cannot.
      assert.equal(
        (await agent('PUT', `/api/v1/policy/scopes/keys/${agentKeyId}`, { selector: { env: 'prod' } })).status,
        403,
        'the key lacks keys:write',
      );
      await admin('PUT', `/api/v1/policy/scopes/keys/${agentKeyId}`, { selector: { env: 'prod' } });
      assert.equal((await run(agent, 'ops.look')).status, 403);
      await admin('PUT', '/api/v1/policy/scopes/users/agent-owner', { runners: ['pol-1'] });
      assert.equal((await run(agent, 'ops.look')).status, 201);
      await admin('PUT', `/api/v1/policy/scopes/keys/${agentKeyId}`, { selector: { env: 'staging' } });
      const narrowed = await run(agent, 'ops.look');
      assert.equal(narrowed.status, 403);
      assert.match(narrowed.body.error.message, /scope:key/);
      await admin('PUT', `/api/v1/policy/scopes/keys/${agentKeyId}`, { selector: { env: 'prod' } });
      assert.equal((await admin('DELETE', '/api/v1/policy/scopes/users/agent-owner')).status, 204);
      assert.equal((await run(agent, 'ops.look')).status, 201);
      assert.equal((await lister('GET', '/api/v1/runners')).body.runners.length, 1);
      assert.ok((await lister('GET', '/api/v1/runs')).body.runs.length > 0);
    });

    test('approvals: pending, self-approval refused, quorum of two, runs, audit names requester, approvers, rule, result; webhook signed', async () => {
      const secret = 'a-webhook-secret-of-some-length';
      await admin('PUT', '/api/v1/policy/settings', {
        webhook_url: `http://127.0.0.1:${(hookServer.address() as { port: number }).port}/hook`,
        webhook_secret: secret,
      });
      const rule = await admin('POST', '/api/v1/policy/rules', {
        kind: 'override',
        action: 'ops.touch',
        decision: 'require_approval',
        approvers: 2,
        approver_role: 'admin',
      });
      const r = await run(agent, 'ops.touch');
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.status, 'pending_approval');
      const view = (await second('GET', `/api/v1/runs/${r.body.id}/approval`)).body;
      assert.equal(view.rule, `override:${rule.body.id}`);
      assert.equal(view.requested_by.type, 'api_key');
      assert.deepEqual(view.args, { target: 'box-1' });
      // The requester, with another of their keys, cannot approve.
      const self = await agentSelf('POST', `/api/v1/runs/${r.body.id}/approve`, { comment: 'me' });
      assert.equal(self.status, 403);
      assert.equal(self.body.error.code, 'self_approval');
      const one = await second('POST', `/api/v1/runs/${r.body.id}/approve`, { comment: 'ok by alice' });
      assert.equal(one.status, 200, JSON.stringify(one.body));
      assert.equal(one.body.run.status, 'pending_approval', 'quorum is two');
      assert.equal((await second('POST', `/api/v1/runs/${r.body.id}/approve`, { comment: 'again' })).status, 409);
      const two = await third('POST', `/api/v1/runs/${r.body.id}/approve`, { comment: 'ok by bob' });
      assert.equal(two.status, 200);
      const done = await final(r.body.id);
      assert.equal(done.status, 'success');
      const trail = await waitFor(async () => {
        const events = await auditKinds(r.body.id);
        return events.some((e) => e.kind === 'run.result') ? events : undefined;
      });
      const kinds = trail.map((e) => e.kind);
      for (const k of [
        'run.requested',
        'run.approval_requested',
        'run.approval_refused',
        'run.approved',
        'run.approval_granted',
        'run.result',
      ])
        assert.ok(kinds.includes(k), `${k} in ${kinds}`);
      assert.equal(trail.find((e) => e.kind === 'run.approval_requested')!.data!['rule'], `override:${rule.body.id}`);
      assert.deepEqual(
        trail.filter((e) => e.kind === 'run.approved').map((e) => e.principal.name),
        ['alice (key)', 'bob (key)'],
      );
      // The runner saw the approvers.
      const hook = await waitFor(async () =>
        hooks.find((h) => h.body.includes(r.body.id) && h.headers['x-airlock-event'] === 'approval.requested'),
      );
      assert.equal(
        hook.headers['x-airlock-signature'],
        webhookSignature(secret, String(hook.headers['x-airlock-timestamp']), hook.body),
      );
      await admin('DELETE', `/api/v1/policy/rules/${rule.body.id}`);
    });

    test('deny with a comment ends the run cancelled; it never runs', async () => {
      const rule = await admin('POST', '/api/v1/policy/rules', {
        kind: 'override',
        action: 'ops.touch',
        decision: 'require_approval',
      });
      const r = await run(agent, 'ops.touch');
      assert.equal(r.body.status, 'pending_approval');
      assert.equal((await second('POST', `/api/v1/runs/${r.body.id}/deny`, {})).status, 400, 'a comment is required');
      const d = await second('POST', `/api/v1/runs/${r.body.id}/deny`, { comment: 'not today' });
      assert.equal(d.status, 200);
      assert.equal(d.body.run.status, 'cancelled');
      assert.equal(d.body.run.error.code, 'approval_denied');
      assert.equal((await third('POST', `/api/v1/runs/${r.body.id}/approve`, {})).status, 409);
      await admin('DELETE', `/api/v1/policy/rules/${rule.body.id}`);
    });

    test('expired approvals fail closed', async () => {
      await admin('PUT', '/api/v1/policy/settings', { approval_ttl_s: 1 });
      const rule = await admin('POST', '/api/v1/policy/rules', {
        kind: 'override',
        action: 'ops.touch',
        decision: 'require_approval',
      });
      const r = await run(agent, 'ops.touch');
      const done = await final(r.body.id);
      assert.equal(done.status, 'cancelled');
      assert.equal(done.error.code, 'approval_expired');
      assert.ok(
        (await auditKinds(r.body.id)).some(
          (e) => e.kind === 'run.approval_expired' && e.data!['rule'] === `override:${rule.body.id}`,
        ),
      );
      assert.equal((await second('POST', `/api/v1/runs/${r.body.id}/approve`, {})).status, 409);
      await admin('PUT', '/api/v1/policy/settings', { approval_ttl_s: 900 });
      await admin('DELETE', `/api/v1/policy/rules/${rule.body.id}`);
    });

    test('standing grants: used and counted, max uses, revoked at once, never over a deny', async () => {
      await admin('PUT', '/api/v1/policy/settings', { approval_ttl_s: 900 });
      const rule = await admin('POST', '/api/v1/policy/rules', {
        kind: 'override',
        action: 'ops.touch',
        decision: 'require_approval',
      });
      const g = await admin('POST', '/api/v1/policy/grants', {
        subject: { type: 'api_key', id: agentKeyId },
        action: 'ops.*',
        arg_constraints: { target: 'box-[0-9]' },
        max_uses: 2,
      });
      assert.equal(g.status, 201, JSON.stringify(g.body));
      const a = await run(agent, 'ops.touch', 'box-1');
      assert.equal(a.body.status !== 'pending_approval', true, JSON.stringify(a.body));
      assert.ok(
        (await auditKinds(a.body.id)).some((e) => e.kind === 'grant.used' && e.data!['rule'] === `grant:${g.body.id}`),
      );
      assert.equal(
        (await run(agent, 'ops.touch', 'box-22')).body.status,
        'pending_approval',
        'argument outside the constraint',
      );
      assert.equal(
        (await run(agentSelf, 'ops.touch', 'box-2')).body.status,
        'pending_approval',
        'another key of the same user',
      );
      const deny = await admin('POST', '/api/v1/policy/rules', { kind: 'tier', tier: 'change', decision: 'deny' });
      assert.equal((await run(agent, 'ops.touch', 'box-2')).status, 403, 'a grant never overrides deny');
      await admin('DELETE', `/api/v1/policy/rules/${deny.body.id}`);
      assert.notEqual((await run(agent, 'ops.touch', 'box-2')).body.status, 'pending_approval');
      assert.equal((await run(agent, 'ops.touch', 'box-3')).body.status, 'pending_approval', 'used up');
      const listed = (await admin('GET', '/api/v1/policy/grants')).body.grants.find(
        (x: { id: string }) => x.id === g.body.id,
      );
      assert.equal(listed.uses, 2);
      const g2 = await admin('POST', '/api/v1/policy/grants', {
        subject: { type: 'user', id: agentUserId },
        action: 'ops.touch',
      });
      assert.notEqual((await run(agent, 'ops.touch', 'box-4')).body.status, 'pending_approval');
      const rev = await admin('POST', `/api/v1/policy/grants/${g2.body.id}/revoke`, { reason: 'done' });
      assert.equal(rev.status, 200);
      assert.equal((await run(agent, 'ops.touch', 'box-4')).body.status, 'pending_approval', 'revoked at once');
      assert.deepEqual(
        (await auditKinds(g2.body.id)).map((e) => e.kind),
        ['grant.created', 'grant.revoked'],
      );
      await admin('DELETE', `/api/v1/policy/rules/${rule.body.id}`);
    });

    test('signed dispatch: the runner refuses an approved but unsigned destructive run and runs the signed one', async () => {
      await admin('PUT', '/api/v1/policy/settings', { approval_ttl_s: 900 });
      // Unsigned tier at the server: approved without signature; the runner (requiring signatures) refuses it.
      const r1 = await run(agent, 'ops.wipe');
      assert.equal(r1.body.status, 'pending_approval');
      assert.equal((await second('POST', `/api/v1/runs/${r1.body.id}/approve`, { comment: 'ok' })).status, 200);
      const refused = await final(r1.body.id);
      assert.equal(refused.status, 'validation_failed');
      assert.equal(refused.error.code, 'signature_missing');
      // Now the organisation requires signatures: approving without one is refused by the server.
      await admin('PUT', '/api/v1/policy/settings', { signed_tiers: ['destructive'], root_public_key: root.publicKey });
      const r2 = await run(agent, 'ops.wipe', 'box-9', { limits: { timeout_s: 7 } });
      assert.equal(r2.body.status, 'pending_approval');
      const unsigned = await second('POST', `/api/v1/runs/${r2.body.id}/approve`, { comment: 'ok' });
      assert.equal(unsigned.status, 400);
      assert.equal(unsigned.body.error.code, 'signature_required');
      const approver = generateSigningKey();
      const now = Date.now();
      const cert: ApproverCert = {
        v: 1,
        key_id: 'alice-1',
        public_key: approver.publicKey,
        subject: 'alice',
        not_before: new Date(now - 60_000).toISOString(),
        not_after: new Date(now + 3600_000).toISOString(),
      };
      const signedCert = { cert, signature: signRaw(root.privateKey, root.publicKey, certBytes(cert)) };
      const view = (await second('GET', `/api/v1/runs/${r2.body.id}/approval`)).body;
      assert.equal(view.envelope.limits.timeout_s, 7);
      const forged = await second('POST', `/api/v1/runs/${r2.body.id}/approve`, {
        comment: 'ok',
        signature: signRaw(
          approver.privateKey,
          approver.publicKey,
          dispatchBytes({ ...view.envelope, limits: { timeout_s: 30 } }),
        ),
        cert: signedCert,
      });
      assert.equal(forged.status, 400);
      assert.equal(forged.body.error.code, 'signature_invalid');
      const ok = await second('POST', `/api/v1/runs/${r2.body.id}/approve`, {
        comment: 'signed',
        signature: signRaw(approver.privateKey, approver.publicKey, dispatchBytes(view.envelope)),
        cert: signedCert,
      });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const done = await final(r2.body.id);
      assert.equal(done.status, 'success', JSON.stringify(done));
      await admin('PUT', '/api/v1/policy/settings', { signed_tiers: [] });
    });

    test('approver groups: a rule names a group; only its members may vote; a group in use cannot be deleted', async () => {
      const g = await admin('POST', '/api/v1/policy/approver-groups', { name: 'dba', members: ['bob'] });
      assert.equal(g.status, 201, JSON.stringify(g.body));
      assert.deepEqual(
        g.body.members.map((m: { username: string }) => m.username),
        ['bob'],
      );
      const badMember = await admin('POST', '/api/v1/policy/approver-groups', { name: 'x', members: ['nobody'] });
      assert.equal(badMember.status, 400);
      assert.equal(badMember.body.error.fields[0].field, 'body.members.0');
      const badGroup = await admin('POST', '/api/v1/policy/rules', {
        kind: 'override',
        action: 'ops.touch',
        decision: 'require_approval',
        approver_group: 'nope',
      });
      assert.equal(badGroup.status, 400);
      assert.equal(badGroup.body.error.fields[0].field, 'body.approver_group');
      const rule = await admin('POST', '/api/v1/policy/rules', {
        kind: 'override',
        action: 'ops.touch',
        decision: 'require_approval',
        approver_role: 'admin',
        approver_group: 'dba',
      });
      assert.equal(rule.status, 201, JSON.stringify(rule.body));
      assert.equal(rule.body.approver_group, g.body.id);
      const r = await run(agent, 'ops.touch', 'box-7');
      assert.equal(r.body.status, 'pending_approval');
      assert.equal((await admin('GET', `/api/v1/runs/${r.body.id}/approval`)).body.approver_group, g.body.id);
      const outsider = await second('POST', `/api/v1/runs/${r.body.id}/approve`, { comment: 'not my team' });
      assert.equal(outsider.status, 403);
      assert.equal(outsider.body.error.code, 'approver_group');
      const member = await third('POST', `/api/v1/runs/${r.body.id}/approve`, { comment: 'dba ok' });
      assert.equal(member.status, 200, JSON.stringify(member.body));
      assert.equal((await final(r.body.id)).status, 'success');
      const inUse = await admin('DELETE', `/api/v1/policy/approver-groups/${g.body.id}`);
      assert.equal(inUse.status, 409);
      assert.equal((await admin('DELETE', `/api/v1/policy/rules/${rule.body.id}`)).status, 204);
      assert.equal((await admin('DELETE', `/api/v1/policy/approver-groups/dba`)).status, 204);
      const kinds = (await auditKinds(g.body.id)).map((e) => e.kind);
      assert.deepEqual(kinds, ['approver_group.created', 'approver_group.deleted']);
    });

    test('approver keys: enroll a root-certified key; it signs only for its holder; revoked, it signs nothing', async () => {
      await admin('PUT', '/api/v1/policy/settings', { signed_tiers: ['destructive'], root_public_key: root.publicKey });
      try {
        const key = generateSigningKey();
        const now = Date.now();
        const cert: ApproverCert = {
          v: 1,
          key_id: 'alice-2',
          public_key: key.publicKey,
          subject: 'alice',
          not_before: new Date(now - 60_000).toISOString(),
          not_after: new Date(now + 3600_000).toISOString(),
        };
        const signedCert = { cert, signature: signRaw(root.privateKey, root.publicKey, certBytes(cert)) };
        const other = generateSigningKey();
        const wrongRoot = await second('POST', '/api/v1/policy/approver-keys', {
          cert: { cert, signature: signRaw(other.privateKey, other.publicKey, certBytes(cert)) },
        });
        assert.equal(wrongRoot.status, 400);
        assert.equal(wrongRoot.body.error.fields[0].field, 'body.cert');
        const enrolled = await second('POST', '/api/v1/policy/approver-keys', { cert: signedCert });
        assert.equal(enrolled.status, 201, JSON.stringify(enrolled.body));
        assert.equal(enrolled.body.state, 'active');
        const sign = async (id: string) => {
          const view = (await admin('GET', `/api/v1/runs/${id}/approval`)).body;
          return {
            comment: 'signed',
            signature: signRaw(key.privateKey, key.publicKey, dispatchBytes(view.envelope)),
            cert: signedCert,
          };
        };
        // Bob holding alice's private key (stolen) cannot sign with her enrolled key.
        const r1 = await run(agent, 'ops.wipe', 'box-3');
        const stolen = await third('POST', `/api/v1/runs/${r1.body.id}/approve`, await sign(r1.body.id));
        assert.equal(stolen.status, 400);
        assert.equal(stolen.body.error.code, 'cert_not_yours');
        const revoked = await second('POST', '/api/v1/policy/approver-keys/alice-2/revoke', { reason: 'laptop lost' });
        assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
        assert.equal(revoked.body.state, 'revoked');
        const late = await second('POST', `/api/v1/runs/${r1.body.id}/approve`, await sign(r1.body.id));
        assert.equal(late.status, 400);
        assert.equal(late.body.error.code, 'cert_revoked');
        const again = await second('POST', '/api/v1/policy/approver-keys', { cert: signedCert });
        assert.equal(again.status, 409, 'a revoked key cannot be enrolled again');
        const list = (await admin('GET', '/api/v1/policy/approver-keys')).body.keys;
        assert.equal(list.find((k: { key_id: string }) => k.key_id === 'alice-2').state, 'revoked');
        const kinds = (await auditKinds(r1.body.id)).map((e) => e.kind);
        assert.ok(kinds.filter((k) => k === 'run.approval_refused').length >= 2, kinds.join(','));
        await admin('POST', `/api/v1/runs/${r1.body.id}/deny`, { comment: 'cleanup' });
      } finally {
        await admin('PUT', '/api/v1/policy/settings', { signed_tiers: [] });
      }
    });
  });
}
