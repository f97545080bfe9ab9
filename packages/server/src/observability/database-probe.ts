import { existsSync } from 'node:fs';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { openSqliteReadonly } from '../backup/open-readonly.js';
import { redactDatabaseUrl } from '../config.js';
import { type Db, pendingMigrations } from '../db/database.js';
import type { Database } from '../db/schema.js';

/** What `airlock doctor` learns about a database target without changing it. */
export type DatabaseProbe =
  | {
      ok: true;
      dialect: 'sqlite' | 'postgres';
      location: string;
      /** False for a SQLite file that does not exist yet (the server creates it). */
      exists: boolean;
      /** Migrations this build would run at the next start. */
      pending: string[];
    }
  | { ok: false; dialect: 'sqlite' | 'postgres'; location: string; message: string };

/**
 * Reach the database the server would use and list the migrations it still needs, read-only:
 * SQLite is opened read-only (a missing file is reported, not created), PostgreSQL gets one
 * connection with a short connect timeout. Messages never contain the password.
 */
export async function probeDatabase(target: string, timeoutMs = 5000): Promise<DatabaseProbe> {
  const location = redactDatabaseUrl(target);
  const isPg = /^postgres(ql)?:\/\//.test(target);
  const dialect = isPg ? 'postgres' : 'sqlite';
  if (!isPg && !existsSync(target)) return { ok: true, dialect, location, exists: false, pending: [] };
  let db: Db;
  try {
    if (isPg) {
      const pool = new pg.Pool({ connectionString: target, max: 1, connectionTimeoutMillis: timeoutMs });
      // An idle client's error would otherwise be an unhandled 'error' event.
      pool.on('error', () => {});
      const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
      db = { kysely, dialect: 'postgres', location, close: () => kysely.destroy() };
    } else {
      db = openSqliteReadonly(target).db;
    }
  } catch (e) {
    return { ok: false, dialect, location, message: (e as Error).message };
  }
  try {
    await sql`select 1`.execute(db.kysely);
    return { ok: true, dialect, location, exists: true, pending: await pendingMigrations(db) };
  } catch (e) {
    const err = e as Error & { code?: string };
    const msg = (err.message || err.code || String(e)).split(target).join(location);
    return { ok: false, dialect, location, message: msg };
  } finally {
    await db.close().catch(() => {});
  }
}
