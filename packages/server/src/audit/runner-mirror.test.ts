import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type AuditEvent, hashEvent } from '@airlock/core';
import type { ServerContext } from '../context.js';
import { type TestDb, testDatabases } from '../testing/databases.js';
import { startTestServer, type TestServer } from '../testing/server.js';
import { checkRunnerLogHead, mirrorRunnerEvent } from './runner-mirror.js';
import { createApiKey, createOrg, createRunner, ownerOf, runnerChain, runnerEvent } from './test-support.js';

interface Alert {
  kind: string;
  runner: string;
  status: string;
  data: Record<string, unknown>;
}

async function alerts(ctx: ServerContext, orgId: string): Promise<Alert[]> {
  const rows = await ctx.db.kysely
    .selectFrom('audit_events')
    .select('body')
    .where('org_id', '=', orgId)
    .where('kind', 'like', 'runner.%')
    .orderBy('seq')
    .execute();
  return rows.map((r) => JSON.parse(r.body) as Alert);
}

async function mirrored(ctx: ServerContext, runnerId: string): Promise<{ seq: number; link: string }[]> {
  const rows = await ctx.db.kysely
    .selectFrom('runner_events')
    .selectAll()
    .where('runner_id', '=', runnerId)
    .orderBy('seq')
    .execute();
  return rows.map((r) => ({ seq: Number(r.seq), link: (r as unknown as { link: string }).link }));
}

const asRecord = (e: AuditEvent): Record<string, unknown> => e as unknown as Record<string, unknown>;

for (const { name, create } of testDatabases()) {
  describe(`runner mirror (${name})`, () => {
    let t: TestDb;
    let srv: TestServer;
    let ctx: ServerContext;
    let orgId: string;
    let key: string;
    before(async () => {
      t = await create();
      srv = await startTestServer(t.url);
      ctx = srv.server.ctx;
      orgId = srv.server.bootstrap.orgId;
      key = await createApiKey(ctx.db, orgId, await ownerOf(ctx.db, orgId), ['audit:read']);
    });
    after(async () => {
      await srv.stop();
      await t.drop();
    });
    const verify = async (): Promise<any> =>
      (await fetch(`${srv.url}/api/v1/audit/verify`, { headers: { authorization: `Bearer ${key}` } })).json();

    test('a linked chain is stored once (re-deliveries are idempotent) and verifies; the start is recorded', async () => {
      const rid = await createRunner(ctx.db, orgId, 'web-1');
      // The runner's log already had events before the server saw it: any prev is accepted first.
      const chain = runnerChain('web-1', 6).slice(2);
      for (const e of chain) await mirrorRunnerEvent(ctx, orgId, rid, asRecord(e));
      for (const e of chain) await mirrorRunnerEvent(ctx, orgId, rid, asRecord(e));
      assert.deepEqual(await mirrored(ctx, rid), [
        { seq: 2, link: 'start' },
        { seq: 3, link: 'linked' },
        { seq: 4, link: 'linked' },
        { seq: 5, link: 'linked' },
      ]);
      const r = await ctx.db.kysely
        .selectFrom('runners')
        .select(['chain_seq', 'chain_hash'])
        .where('id', '=', rid)
        .executeTakeFirstOrThrow();
      assert.equal(Number(r.chain_seq), 5);
      assert.equal(r.chain_hash, chain[3]?.hash);
      const a = await alerts(ctx, orgId);
      assert.deepEqual(
        a.map((x) => x.kind),
        ['runner.mirror_started'],
      );
      assert.equal(a[0]?.data['seq'], 2);
      const v = await verify();
      assert.equal(v.ok, true, JSON.stringify(v));
      const mine = v.runners.find((x: { name: string }) => x.name === 'web-1');
      assert.equal(mine.ok, true);
      assert.equal(mine.count, 4);
      assert.equal(mine.start_seq, 2);
      assert.equal(mine.head.seq, 5);
      // The head the runner reports on hello: equal or ahead is fine.
      await checkRunnerLogHead(ctx, orgId, rid, { seq: 5, hash: chain[3]!.hash });
      await checkRunnerLogHead(ctx, orgId, rid, { seq: 9, hash: `sha256:${'9'.repeat(64)}` });
      await checkRunnerLogHead(ctx, orgId, rid, undefined);
      assert.equal((await alerts(ctx, orgId)).length, 1);
    });

    test('bad hash: critical alert, not stored, head unchanged', async () => {
      const rid = await createRunner(ctx.db, orgId, 'web-2');
      const chain = runnerChain('web-2', 3);
      await mirrorRunnerEvent(ctx, orgId, rid, asRecord(chain[0]!));
      const forged = { ...chain[1]!, reason: 'edited on the host' };
      await mirrorRunnerEvent(ctx, orgId, rid, forged as unknown as Record<string, unknown>);
      await mirrorRunnerEvent(ctx, orgId, rid, { not: 'an event' });
      assert.deepEqual(
        (await mirrored(ctx, rid)).map((x) => x.seq),
        [0],
      );
      const a = (await alerts(ctx, orgId)).filter((x) => x.runner === 'web-2');
      assert.deepEqual(
        a.map((x) => x.kind),
        ['runner.mirror_started', 'runner.chain_bad_hash', 'runner.chain_bad_hash'],
      );
      assert.equal(a[1]?.status, 'error');
      assert.equal(a[1]?.data['seq'], 1);
      assert.equal(a[1]?.data['alert'], 'critical');
      // The genuine event still links.
      await mirrorRunnerEvent(ctx, orgId, rid, asRecord(chain[1]!));
      assert.deepEqual(await mirrored(ctx, rid), [
        { seq: 0, link: 'start' },
        { seq: 1, link: 'linked' },
      ]);
    });

    test('gap: low-severity alert with the seq range; mirroring continues from the new event; a late event fills in', async () => {
      const rid = await createRunner(ctx.db, orgId, 'web-3');
      const chain = runnerChain('web-3', 8);
      await mirrorRunnerEvent(ctx, orgId, rid, asRecord(chain[0]!));
      await mirrorRunnerEvent(ctx, orgId, rid, asRecord(chain[1]!));
      // seq 2..4 were local runs on the host: never sent.
      await mirrorRunnerEvent(ctx, orgId, rid, asRecord(chain[5]!));
      await mirrorRunnerEvent(ctx, orgId, rid, asRecord(chain[6]!));
      const a = (await alerts(ctx, orgId)).filter((x) => x.runner === 'web-3');
      assert.deepEqual(
        a.map((x) => x.kind),
        ['runner.mirror_started', 'runner.chain_gap'],
      );
      assert.equal(a[1]?.data['from_seq'], 2);
      assert.equal(a[1]?.data['to_seq'], 4);
      assert.equal(a[1]?.data['alert'], 'warning');
      assert.notEqual(a[1]?.status, 'error');
      assert.deepEqual(await mirrored(ctx, rid), [
        { seq: 0, link: 'start' },
        { seq: 1, link: 'linked' },
        { seq: 5, link: 'gap' },
        { seq: 6, link: 'linked' },
      ]);
      // A late re-delivery of seq 4 links to nothing before it but makes seq 5 linked.
      await mirrorRunnerEvent(ctx, orgId, rid, asRecord(chain[4]!));
      assert.deepEqual(
        (await mirrored(ctx, rid)).map((x) => `${x.seq}:${x.link}`),
        ['0:start', '1:linked', '4:gap', '5:linked', '6:linked'],
      );
      assert.equal((await alerts(ctx, orgId)).filter((x) => x.runner === 'web-3').length, 2);
      const v = await verify();
      const mine = v.runners.find((x: { name: string }) => x.name === 'web-3');
      assert.equal(mine.ok, true, JSON.stringify(mine));
      assert.deepEqual(mine.breaks, [{ seq: 4, link: 'gap' }]);
      const r = await ctx.db.kysely
        .selectFrom('runners')
        .select('chain_seq')
        .where('id', '=', rid)
        .executeTakeFirstOrThrow();
      assert.equal(Number(r.chain_seq), 6);
    });

    test('fork: same seq with another hash, or a successor that does not link: critical alert, the mirror keeps the original', async () => {
      const rid = await createRunner(ctx.db, orgId, 'web-4');
      const chain = runnerChain('web-4', 4);
      for (const e of chain) await mirrorRunnerEvent(ctx, orgId, rid, asRecord(e));
      // The runner's log was rewritten from seq 2 on.
      const alt2 = runnerEvent({ seq: 1, hash: chain[1]!.hash }, 'web-4', 99);
      await mirrorRunnerEvent(ctx, orgId, rid, asRecord(alt2));
      let a = (await alerts(ctx, orgId)).filter((x) => x.runner === 'web-4');
      assert.deepEqual(
        a.map((x) => x.kind),
        ['runner.mirror_started', 'runner.chain_fork'],
      );
      assert.equal(a[1]?.data['seq'], 2);
      assert.equal(a[1]?.data['mirrored_hash'], chain[2]!.hash);
      assert.equal(a[1]?.data['received_hash'], alt2.hash);
      assert.equal(a[1]?.status, 'error');
      // A successor of an event the server never saw, at head + 1.
      const r0 = await ctx.db.kysely
        .selectFrom('runners')
        .select(['chain_seq', 'chain_hash'])
        .where('id', '=', rid)
        .executeTakeFirstOrThrow();
      const next = runnerEvent({ seq: Number(r0.chain_seq), hash: `sha256:${'e'.repeat(64)}` }, 'web-4', 100);
      await mirrorRunnerEvent(ctx, orgId, rid, asRecord(next));
      a = (await alerts(ctx, orgId)).filter((x) => x.runner === 'web-4');
      assert.deepEqual(
        a.map((x) => x.kind),
        ['runner.mirror_started', 'runner.chain_fork', 'runner.chain_fork'],
      );
      const rows = await mirrored(ctx, rid);
      assert.deepEqual(
        rows.map((x) => `${x.seq}:${x.link}`),
        ['0:start', '1:linked', '2:linked', '3:linked', `${next.seq}:${next.seq === 4 ? 'fork' : 'gap'}`],
      );
      const stored2 = await ctx.db.kysely
        .selectFrom('runner_events')
        .select('hash')
        .where('runner_id', '=', rid)
        .where('seq', '=', 2)
        .executeTakeFirstOrThrow();
      assert.equal(stored2.hash, chain[2]!.hash, 'the originally mirrored event is kept as evidence');
      const v = await verify();
      assert.equal(v.runners.find((x: { name: string }) => x.name === 'web-4').ok, true);
    });

    test('a runner log head behind the mirror (or rewritten at the same seq) raises runner.log_truncated once', async () => {
      const rid = await createRunner(ctx.db, orgId, 'web-5');
      const chain = runnerChain('web-5', 5);
      for (const e of chain) await mirrorRunnerEvent(ctx, orgId, rid, asRecord(e));
      await checkRunnerLogHead(ctx, orgId, rid, { seq: 2, hash: chain[2]!.hash });
      await checkRunnerLogHead(ctx, orgId, rid, { seq: 2, hash: chain[2]!.hash }); // reconnect: not again
      let a = (await alerts(ctx, orgId)).filter((x) => x.runner === 'web-5');
      assert.deepEqual(
        a.map((x) => x.kind),
        ['runner.mirror_started', 'runner.log_truncated'],
      );
      assert.deepEqual(a[1]?.data['mirrored_head'], { seq: 4, hash: chain[4]!.hash });
      assert.deepEqual(a[1]?.data['reported_head'], { seq: 2, hash: chain[2]!.hash });
      assert.equal(a[1]?.status, 'error');
      // Same seq, another hash.
      await checkRunnerLogHead(ctx, orgId, rid, { seq: 2, hash: `sha256:${'d'.repeat(64)}` });
      // An empty log.
      await checkRunnerLogHead(ctx, orgId, rid, null);
      a = (await alerts(ctx, orgId)).filter((x) => x.runner === 'web-5');
      assert.deepEqual(
        a.map((x) => x.kind),
        ['runner.mirror_started', 'runner.log_truncated', 'runner.log_truncated', 'runner.log_truncated'],
      );
      // A runner never mirrored: nothing to compare.
      const fresh = await createRunner(ctx.db, orgId, 'web-6');
      await checkRunnerLogHead(ctx, orgId, fresh, null);
      assert.equal((await alerts(ctx, orgId)).filter((x) => x.runner === 'web-6').length, 0);
    });

    test('tampered mirror rows are reported by verify; runners of another org are neither touched nor listed', async () => {
      const rid = await createRunner(ctx.db, orgId, 'web-7');
      const chain = runnerChain('web-7', 4);
      for (const e of chain) await mirrorRunnerEvent(ctx, orgId, rid, asRecord(e));
      const row = await ctx.db.kysely
        .selectFrom('runner_events')
        .select('body')
        .where('runner_id', '=', rid)
        .where('seq', '=', 2)
        .executeTakeFirstOrThrow();
      await ctx.db.kysely
        .updateTable('runner_events')
        .set({ body: row.body.replace('"reason":"test"', '"reason":"nope"') })
        .where('runner_id', '=', rid)
        .where('seq', '=', 2)
        .execute();
      let v = await verify();
      assert.equal(v.ok, false);
      assert.equal(v.reason, 'runner_mirror');
      const mine = v.runners.find((x: { name: string }) => x.name === 'web-7');
      assert.equal(mine.ok, false);
      assert.equal(mine.reason, 'edited');
      assert.equal(mine.index, 2);
      await ctx.db.kysely
        .updateTable('runner_events')
        .set({ body: row.body })
        .where('runner_id', '=', rid)
        .where('seq', '=', 2)
        .execute();
      await ctx.db.kysely.deleteFrom('runner_events').where('runner_id', '=', rid).where('seq', '=', 2).execute();
      v = await verify();
      const again = v.runners.find((x: { name: string }) => x.name === 'web-7');
      assert.equal(again.ok, false);
      assert.equal(again.reason, 'deleted');
      await ctx.db.kysely.deleteFrom('runner_events').where('runner_id', '=', rid).execute();

      // Another org's runner id with our org id: ignored.
      const other = await createOrg(ctx.db, 'initech');
      const theirRunner = await createRunner(ctx.db, other.orgId, 'web-1');
      await mirrorRunnerEvent(ctx, orgId, theirRunner, asRecord(runnerChain('x', 1)[0]!));
      assert.deepEqual(await mirrored(ctx, theirRunner), []);
      await mirrorRunnerEvent(ctx, other.orgId, theirRunner, asRecord(runnerChain('x', 1)[0]!));
      assert.equal((await mirrored(ctx, theirRunner)).length, 1);
      v = await verify();
      assert.equal(v.runners.filter((x: { runner_id: string }) => x.runner_id === theirRunner).length, 0);
      // The hash rule is the core one.
      assert.equal(hashEvent(chain[0]!), chain[0]!.hash);
    });
  });
}
