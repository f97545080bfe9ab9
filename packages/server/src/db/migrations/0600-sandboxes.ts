import type { Kysely } from 'kysely';

/**
 * Sandboxes under the control plane: each sandbox with its host, owner and limits; each exec
 * (for CPU-second quotas); the organisation's sandbox policy. Portable types only.
 */
export const sandboxes = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('sandboxes')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('org_id', 'text', (c) => c.notNull().references('orgs.id'))
      .addColumn('host_id', 'text', (c) => c.notNull())
      .addColumn('host_sandbox_id', 'text')
      .addColumn('owner_user_id', 'text', (c) => c.notNull())
      .addColumn('created_by', 'text', (c) => c.notNull())
      .addColumn('language_pack', 'text', (c) => c.notNull())
      .addColumn('image_hash', 'text', (c) => c.notNull())
      .addColumn('memory_mb', 'integer', (c) => c.notNull())
      .addColumn('vcpus', 'integer', (c) => c.notNull())
      .addColumn('lifetime_s', 'integer', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .addColumn('ended_at', 'text')
      .addColumn('end_reason', 'text')
      .addColumn('exec_count', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('cpu_ms', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.createIndex('sandboxes_org_state').on('sandboxes').columns(['org_id', 'state']).execute();
    await db.schema.createIndex('sandboxes_host').on('sandboxes').columns(['host_id', 'state']).execute();

    await db.schema
      .createTable('sandbox_execs')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('sandbox_id', 'text', (c) => c.notNull())
      .addColumn('org_id', 'text', (c) => c.notNull())
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('started_at', 'text', (c) => c.notNull())
      .addColumn('duration_ms', 'integer', (c) => c.notNull())
      .addColumn('cpu_ms', 'integer', (c) => c.notNull())
      .addColumn('exit_code', 'integer')
      .addColumn('status', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('sandbox_execs_org_time')
      .on('sandbox_execs')
      .columns(['org_id', 'started_at'])
      .execute();

    await db.schema
      .createTable('sandbox_policies')
      .addColumn('org_id', 'text', (c) => c.primaryKey().references('orgs.id'))
      .addColumn('body', 'text', (c) => c.notNull())
      .addColumn('updated_by', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
  },
  async down(): Promise<void> {
    throw new Error('cannot be reverted');
  },
};
