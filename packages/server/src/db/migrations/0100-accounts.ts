import type { Kysely } from 'kysely';

/**
 * Accounts: indexes for the per-request lookups and the bulk operations of the accounts
 * module (end every session of a user, list a user's or an organisation's keys, prune
 * expired sessions). Plain indexes only, so it is the same on SQLite and Postgres.
 */
export function accounts() {
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.createIndex('sessions_user').on('sessions').column('user_id').execute();
      await db.schema.createIndex('sessions_expires').on('sessions').column('expires_at').execute();
      await db.schema.createIndex('api_keys_org_user').on('api_keys').columns(['org_id', 'user_id']).execute();
      await db.schema.createIndex('users_org_role').on('users').columns(['org_id', 'role']).execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      for (const name of ['sessions_user', 'sessions_expires', 'api_keys_org_user', 'users_org_role']) {
        await db.schema.dropIndex(name).ifExists().execute();
      }
    },
  };
}
