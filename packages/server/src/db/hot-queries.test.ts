// Compiled hot-path queries: the same shape runs with new values on both dialects, inside and
// outside transactions, keeps its constant parameters, and refuses a shape whose value would
// be compiled into the SQL text instead of bound.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { type TestDb, testDatabases } from '../testing/databases.js';
import type { Db } from './database.js';
import { HotQuery } from './hot-queries.js';

const orgByName = new HotQuery('orgByName', ['name'], (db, p: { name: string }) =>
  db.selectFrom('orgs').select(['id', 'name']).where('name', '=', p.name).limit(1),
);
const renameIn = new HotQuery('renameIn', ['id', 'name'], (db, p: { id: string; name: string }) =>
  db
    .updateTable('orgs')
    .set({ name: p.name })
    .where('id', '=', p.id)
    // Constants stay as compiled: only the named values change per call.
    .where('created_at', 'in', ['2020-01-01T00:00:00.000Z', '2020-01-02T00:00:00.000Z']),
);
const inlined = new HotQuery('inlined', ['x'], (db, p: { x: string }) =>
  db.selectFrom('orgs').select(sql.lit(p.x).as('x')),
);

for (const { name, create } of testDatabases()) {
  describe(`hot queries (${name})`, () => {
    let t: TestDb;
    let db: Db;
    before(async () => {
      t = await create();
      db = await t.open();
      await db.kysely
        .insertInto('orgs')
        .values([
          { id: 'hq-1', name: 'one', created_at: '2020-01-01T00:00:00.000Z' },
          { id: 'hq-2', name: 'two', created_at: '2020-01-02T00:00:00.000Z' },
          { id: 'hq-3', name: 'three', created_at: '2020-01-03T00:00:00.000Z' },
        ])
        .execute();
    });
    after(async () => {
      await db?.close();
      await t?.drop();
    });

    test('one compiled shape, new values each call', async () => {
      assert.deepEqual(await orgByName.first(db.kysely, { name: 'one' }), { id: 'hq-1', name: 'one' });
      assert.deepEqual(await orgByName.first(db.kysely, { name: 'two' }), { id: 'hq-2', name: 'two' });
      assert.equal(await orgByName.first(db.kysely, { name: 'none' }), undefined);
      assert.equal(await renameIn.changed(db.kysely, { id: 'hq-2', name: 'deux' }), 1);
      // hq-3 is outside the compiled constant list: nothing changes.
      assert.equal(await renameIn.changed(db.kysely, { id: 'hq-3', name: 'trois' }), 0);
      assert.deepEqual(await orgByName.first(db.kysely, { name: 'deux' }), { id: 'hq-2', name: 'deux' });
    });

    test('runs inside a transaction and rolls back with it', async () => {
      await assert.rejects(
        db.kysely.transaction().execute(async (trx) => {
          assert.equal(await renameIn.changed(trx, { id: 'hq-1', name: 'uno' }), 1);
          assert.deepEqual(await orgByName.first(trx, { name: 'uno' }), { id: 'hq-1', name: 'uno' });
          throw new Error('roll back');
        }),
        /roll back/,
      );
      assert.deepEqual(await orgByName.first(db.kysely, { name: 'one' }), { id: 'hq-1', name: 'one' });
    });

    test('a query outside a transaction never lands inside another caller’s open one', async () => {
      // A transaction of another flow is open (its savepoint, on SQLite) and waits on I/O; a
      // hot query from the root runs meanwhile or after it, never inside it, so the rollback
      // does not undo it.
      let opened!: () => void;
      const isOpen = new Promise<void>((r) => {
        opened = r;
      });
      const tx = db.kysely.transaction().execute(async (trx) => {
        assert.equal(await renameIn.changed(trx, { id: 'hq-1', name: 'tx-name' }), 1);
        opened();
        await new Promise((r) => setTimeout(r, 30));
        throw new Error('roll back');
      });
      await isOpen;
      const outside = renameIn.changed(db.kysely, { id: 'hq-2', name: 'outside' });
      await assert.rejects(tx, /roll back/);
      assert.equal(await outside, 1);
      assert.deepEqual(await orgByName.first(db.kysely, { name: 'outside' }), { id: 'hq-2', name: 'outside' });
      assert.deepEqual(await orgByName.first(db.kysely, { name: 'one' }), { id: 'hq-1', name: 'one' });
    });

    test('a value compiled into the SQL text is refused, naming the query', async () => {
      await assert.rejects(inlined.execute(db.kysely, { x: 'a' }), /hot query inlined: x is not a bound parameter/);
    });
  });
}
