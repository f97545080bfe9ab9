// The database contract: every test that touches the database runs against SQLite and a
// real PostgreSQL. `scripts/test.mjs` starts one PostgreSQL cluster per test run and
// passes its URL in AIRLOCK_TEST_PG_URL; each test gets a fresh database of its own.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { type Db, openDatabase } from '../db/database.js';

/** A fresh, migrated database of one dialect, and how to throw it away. */
export interface TestDb {
  readonly name: 'sqlite' | 'postgres';
  readonly url: string;
  open(): Promise<Db>;
  drop(): Promise<void>;
}

/** The dialects every database test runs against. PostgreSQL is required, never skipped silently. */
export function testDatabases(): { name: 'sqlite' | 'postgres'; create: () => Promise<TestDb> }[] {
  return [
    { name: 'sqlite', create: createSqlite },
    { name: 'postgres', create: createPostgres },
  ];
}

async function createSqlite(): Promise<TestDb> {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-db-'));
  const url = join(dir, 'airlock.db');
  return {
    name: 'sqlite',
    url,
    open: () => openDatabase(url),
    drop: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

async function createPostgres(): Promise<TestDb> {
  const admin = process.env['AIRLOCK_TEST_PG_URL'];
  if (admin === undefined || admin === '') {
    throw new Error(
      'AIRLOCK_TEST_PG_URL is not set: run the tests with "npm test" (scripts/test.mjs starts PostgreSQL)',
    );
  }
  const name = `airlock_test_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  await client.query(`CREATE DATABASE ${name}`);
  await client.end();
  const url = admin.replace(/\/[^/]*$/, `/${name}`);
  return {
    name: 'postgres',
    url,
    open: () => openDatabase(url),
    drop: async () => {
      const c = new pg.Client({ connectionString: admin });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
