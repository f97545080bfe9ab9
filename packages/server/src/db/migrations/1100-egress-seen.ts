import type { Kysely } from 'kysely';

/**
 * Egress event ids a sandbox host reported, per host: written in the transaction that
 * appends the event's `sandbox.egress` audit event, so an event the host sends again (its
 * acknowledgement was lost with a connection) is acknowledged again and not recorded twice.
 * One small row per audited egress event; it lives as long as the audit log does.
 */
export const egressSeen = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('egress_seen')
      .addColumn('host_id', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('recorded_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('egress_seen_pk', ['host_id', 'event_id'])
      .execute();
  },
  async down(): Promise<void> {
    throw new Error('cannot be reverted');
  },
};
