import type { Kysely } from 'kysely';

/**
 * A sandbox's egress summary on its row: `{allow, secrets: [{name, hosts}]}` as JSON, or null
 * for none. Never secret values (they go to the host only). Lets the sandbox list and detail
 * say whether a sandbox has egress, and GET /sandboxes/:id/egress read the allowlist, without
 * looking up the `sandbox.created` audit event. Rows from before this migration stay null; the
 * egress route falls back to the audit event for them.
 */
export const sandboxEgress = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('sandboxes').addColumn('egress', 'text').execute();
  },
  async down(): Promise<void> {
    throw new Error('cannot be reverted');
  },
};
