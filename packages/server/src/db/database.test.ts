import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { testDatabases } from '../testing/databases.js';

for (const { name, create } of testDatabases()) {
  describe(`database (${name})`, () => {
    test('migrates, writes and reads every table, and re-opens idempotently', async () => {
      const t = await create();
      try {
        const db = await t.open();
        const now = new Date().toISOString();
        await db.kysely.insertInto('orgs').values({ id: 'o1', name: 'acme', created_at: now }).execute();
        const rows = await db.kysely.selectFrom('orgs').selectAll().execute();
        assert.deepEqual(rows, [{ id: 'o1', name: 'acme', created_at: now }]);
        await assert.rejects(
          db.kysely.insertInto('orgs').values({ id: 'o2', name: 'acme', created_at: now }).execute(),
        );
        await db.close();
        const again = await t.open();
        assert.equal((await again.kysely.selectFrom('orgs').selectAll().execute()).length, 1);
        await again.close();
      } finally {
        await t.drop();
      }
    });
  });
}
