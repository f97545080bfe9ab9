import type { Kysely } from 'kysely';

/**
 * Several instances on one Postgres: which session (and instance) holds each runner's
 * WebSocket, so a session closing on one instance does not mark offline a runner that has
 * already reconnected to another, and `cluster_instances` heartbeats so the leader can mark
 * offline the runners of an instance that died without closing its sessions.
 */
export const cluster = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('runners').addColumn('session_id', 'text').execute();
    await db.schema.alterTable('runners').addColumn('instance_id', 'text').execute();
    await db.schema
      .createTable('cluster_instances')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('started_at', 'text', (c) => c.notNull())
      .addColumn('heartbeat_at', 'text', (c) => c.notNull())
      .execute();
  },
  async down(): Promise<void> {
    throw new Error('cannot be reverted');
  },
};
