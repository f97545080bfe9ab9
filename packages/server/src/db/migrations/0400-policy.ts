import type { Kysely } from 'kysely';

/**
 * Policy: tier rules and action overrides, runner scopes of users and keys, standing grants,
 * per-organisation settings (signed tiers, root key, webhook), and the approval state of runs.
 * Portable types only (text, integer), the same on SQLite and Postgres.
 */
export const policy = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('policy_rules')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('org_id', 'text', (c) => c.notNull().references('orgs.id'))
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('priority', 'integer', (c) => c.notNull())
      .addColumn('tier', 'text')
      .addColumn('action', 'text')
      .addColumn('selector', 'text', (c) => c.notNull())
      .addColumn('decision', 'text')
      .addColumn('approvers', 'integer')
      .addColumn('approver_role', 'text')
      .addColumn('limits', 'text')
      .addColumn('pin_args', 'text')
      .addColumn('comment', 'text')
      .addColumn('created_by', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('policy_rules_org').on('policy_rules').column('org_id').execute();

    await db.schema
      .createTable('policy_scopes')
      .addColumn('subject_type', 'text', (c) => c.notNull())
      .addColumn('subject_id', 'text', (c) => c.notNull())
      .addColumn('org_id', 'text', (c) => c.notNull().references('orgs.id'))
      .addColumn('selector', 'text')
      .addColumn('runners', 'text')
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('policy_scopes_pk', ['subject_type', 'subject_id'])
      .execute();

    await db.schema
      .createTable('policy_grants')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('org_id', 'text', (c) => c.notNull().references('orgs.id'))
      .addColumn('subject_type', 'text', (c) => c.notNull())
      .addColumn('subject_id', 'text', (c) => c.notNull())
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('selector', 'text', (c) => c.notNull())
      .addColumn('arg_constraints', 'text', (c) => c.notNull())
      .addColumn('max_uses', 'integer')
      .addColumn('uses', 'integer', (c) => c.notNull())
      .addColumn('expires_at', 'text')
      .addColumn('revoked_at', 'text')
      .addColumn('comment', 'text')
      .addColumn('created_by', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('policy_grants_subject')
      .on('policy_grants')
      .columns(['org_id', 'subject_id'])
      .execute();

    await db.schema
      .createTable('policy_settings')
      .addColumn('org_id', 'text', (c) => c.primaryKey().references('orgs.id'))
      .addColumn('signed_tiers', 'text', (c) => c.notNull())
      .addColumn('root_public_key', 'text')
      .addColumn('webhook_url', 'text')
      .addColumn('webhook_secret', 'text')
      .addColumn('approval_ttl_s', 'integer', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('run_approvals')
      .addColumn('run_id', 'text', (c) => c.primaryKey().references('runs.id'))
      .addColumn('org_id', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('rule', 'text', (c) => c.notNull())
      .addColumn('risk', 'text', (c) => c.notNull())
      .addColumn('requester_user_id', 'text', (c) => c.notNull())
      .addColumn('approvers_required', 'integer', (c) => c.notNull())
      .addColumn('approver_role', 'text', (c) => c.notNull())
      .addColumn('signature_required', 'integer', (c) => c.notNull())
      .addColumn('runner_name', 'text', (c) => c.notNull())
      .addColumn('nonce', 'text', (c) => c.notNull())
      .addColumn('envelope_expires_at', 'text', (c) => c.notNull())
      .addColumn('expires_at', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('decided_at', 'text')
      .execute();
    await db.schema.createIndex('run_approvals_pending').on('run_approvals').columns(['state', 'expires_at']).execute();

    await db.schema
      .createTable('approval_votes')
      .addColumn('run_id', 'text', (c) => c.notNull().references('runs.id'))
      .addColumn('approver_id', 'text', (c) => c.notNull())
      .addColumn('org_id', 'text', (c) => c.notNull())
      .addColumn('approver_name', 'text', (c) => c.notNull())
      .addColumn('vote', 'text', (c) => c.notNull())
      .addColumn('comment', 'text', (c) => c.notNull())
      .addColumn('signature', 'text')
      .addColumn('cert', 'text')
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('approval_votes_pk', ['run_id', 'approver_id'])
      .execute();
  },
  async down(): Promise<void> {
    throw new Error('cannot be reverted');
  },
};
