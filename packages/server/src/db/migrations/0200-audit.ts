import type { Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * Audit store additions (owned by src/audit): the public keys that signed checkpoints (one
 * per server instance home), how each mirrored runner event links to its predecessor, and
 * indexes for org-scoped search and checkpoint lookups.
 */
export function audit(dialect: Dialect) {
  void dialect;
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('audit_signing_keys')
        .addColumn('key_id', 'text', (c) => c.primaryKey())
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      // 'start' | 'linked' | 'gap' | 'fork': how the event joined the mirror (see docs/audit.md).
      await db.schema
        .alterTable('runner_events')
        .addColumn('link', 'text', (c) => c.notNull().defaultTo('linked'))
        .execute();
      await db.schema.createIndex('audit_events_org_seq').on('audit_events').columns(['org_id', 'seq']).execute();
      await db.schema.createIndex('audit_checkpoints_seq').on('audit_checkpoints').column('seq').execute();
    },
    async down(): Promise<void> {
      throw new Error('the audit migration cannot be reverted');
    },
  };
}
