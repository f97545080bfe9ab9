// The server audit log's appends: the chain never forks or gaps when the SQLite head hint is
// stale (another writer appended, or the transaction that wrote it rolled back), and an
// append joined to a caller's transaction commits or rolls back with it. Both dialects.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { verifyChain } from '@airlock/core';
import type { Db } from '../db/database.js';
import { type TestDb, testDatabases } from '../testing/databases.js';
import { ServerAuditLog } from './audit-log.js';

const actor = { type: 'system', id: 'test' } as const;

async function chain(db: Db): Promise<{ kinds: string[]; ok: boolean; detail: string }> {
  const rows = await db.kysely.selectFrom('audit_events').select(['body', 'kind']).orderBy('seq').execute();
  const res = verifyChain(rows.map((r) => JSON.parse(r.body) as unknown));
  return { kinds: rows.map((r) => r.kind), ok: res.ok, detail: JSON.stringify(res) };
}

for (const { name, create } of testDatabases()) {
  describe(`server audit log appends (${name})`, () => {
    let t: TestDb;
    let db: Db;
    let other: Db;
    before(async () => {
      t = await create();
      db = await t.open();
      other = await t.open();
    });
    after(async () => {
      await other?.close();
      await db?.close();
      await t?.drop();
    });

    test('two writers on one database interleave without a fork or a gap', async () => {
      const a = new ServerAuditLog(db);
      const b = new ServerAuditLog(other);
      const before = (await chain(db)).kinds.length;
      // Each log remembers its own last append; the other's appends make that memory stale.
      for (let i = 0; i < 5; i++) {
        await a.record({ orgId: null, kind: `test.a${i}`, actor });
        await a.record({ orgId: null, kind: `test.a${i}b`, actor });
        await b.record({ orgId: null, kind: `test.b${i}`, actor });
      }
      // Concurrent appends of one server (one SQLite writer; on Postgres the advisory lock).
      await Promise.all(Array.from({ length: 10 }, (_, i) => a.record({ orgId: null, kind: `test.c${i}`, actor })));
      await b.record({ orgId: null, kind: 'test.last', actor });
      const c = await chain(db);
      assert.ok(c.ok, c.detail);
      assert.equal(c.kinds.length, before + 26);
      assert.equal((await a.head()).seq, c.kinds.length - 1);
      await a.record({ orgId: null, kind: 'test.after_last', actor });
      const d = await chain(db);
      assert.ok(d.ok, d.detail);
    });

    test('an append in a rolled-back transaction leaves no event, and the next append links', async () => {
      const log = new ServerAuditLog(db);
      await log.record({ orgId: null, kind: 'test.before', actor });
      await assert.rejects(
        db.kysely.transaction().execute(async (trx) => {
          await log.record({ orgId: null, kind: 'test.rolled_back', actor }, trx);
          throw new Error('the change this event records failed');
        }),
        /the change this event records failed/,
      );
      await log.record({ orgId: null, kind: 'test.after', actor });
      const c = await chain(db);
      assert.ok(c.ok, c.detail);
      assert.ok(!c.kinds.includes('test.rolled_back'));
      assert.deepEqual(c.kinds.slice(-2), ['test.before', 'test.after']);
    });

    test('an append joined to a transaction commits with the change it records', async () => {
      const log = new ServerAuditLog(db);
      const orgId = `org-${name}-audit-trx`;
      await db.kysely.transaction().execute(async (trx) => {
        await trx.insertInto('orgs').values({ id: orgId, name: orgId, created_at: new Date().toISOString() }).execute();
        await log.record({ orgId, kind: 'test.joined', actor }, trx);
        await log.record({ orgId, kind: 'test.joined2', actor }, trx);
      });
      const org = await db.kysely.selectFrom('orgs').select('id').where('id', '=', orgId).executeTakeFirst();
      assert.equal(org?.id, orgId);
      const c = await chain(db);
      assert.ok(c.ok, c.detail);
      assert.deepEqual(c.kinds.slice(-2), ['test.joined', 'test.joined2']);
    });
  });
}
