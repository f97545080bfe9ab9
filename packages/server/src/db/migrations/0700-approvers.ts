import type { Kysely } from 'kysely';

/**
 * Approvers: enrolled approver keys (certified by the organisation root, revocable before their
 * certificate expires), approver groups and their members, and the group a rule (and so a
 * pending approval) asks its approvers to come from. Portable types only.
 */
export const approvers = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('approver_keys')
      .addColumn('org_id', 'text', (c) => c.notNull().references('orgs.id'))
      .addColumn('key_id', 'text', (c) => c.notNull())
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('subject', 'text', (c) => c.notNull())
      .addColumn('public_key', 'text', (c) => c.notNull())
      .addColumn('cert', 'text', (c) => c.notNull())
      .addColumn('not_after', 'text', (c) => c.notNull())
      .addColumn('enrolled_at', 'text', (c) => c.notNull())
      .addColumn('revoked_at', 'text')
      .addColumn('revoked_by', 'text')
      .addPrimaryKeyConstraint('approver_keys_pk', ['org_id', 'key_id'])
      .execute();
    await db.schema
      .createTable('approver_groups')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('org_id', 'text', (c) => c.notNull().references('orgs.id'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addUniqueConstraint('approver_groups_name', ['org_id', 'name'])
      .execute();
    await db.schema
      .createTable('approver_group_members')
      .addColumn('group_id', 'text', (c) => c.notNull().references('approver_groups.id').onDelete('cascade'))
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('org_id', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('approver_group_members_pk', ['group_id', 'user_id'])
      .execute();
    await db.schema.alterTable('policy_rules').addColumn('approver_group', 'text').execute();
    await db.schema.alterTable('run_approvals').addColumn('approver_group', 'text').execute();
  },
};
