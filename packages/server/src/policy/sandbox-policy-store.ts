// Reading and writing an organisation's sandbox policy. Re-read at every decision, so a
// change applies to the very next create or exec.
import type { Db } from '../db/database.js';
import type { SandboxTables } from '../sandboxes/tables.js';
import { DEFAULT_SANDBOX_POLICY, type SandboxPolicy, sandboxPolicySchema } from './sandbox-policy.js';

/** The organisation's sandbox policy, or the default when none was set. */
export async function loadSandboxPolicy(db: Db, orgId: string): Promise<SandboxPolicy> {
  const row = await db.kysely
    .withTables<SandboxTables>()
    .selectFrom('sandbox_policies')
    .select('body')
    .where('org_id', '=', orgId)
    .executeTakeFirst();
  if (row === undefined) return DEFAULT_SANDBOX_POLICY;
  // Stored bodies were validated when written; a body that no longer parses falls back to
  // the default rather than to "anything goes".
  const parsed = sandboxPolicySchema.safeParse(JSON.parse(row.body));
  return parsed.success ? parsed.data : DEFAULT_SANDBOX_POLICY;
}

/** Replace the organisation's sandbox policy. */
export async function saveSandboxPolicy(db: Db, orgId: string, policy: SandboxPolicy, by: string): Promise<void> {
  const now = new Date().toISOString();
  await db.kysely
    .withTables<SandboxTables>()
    .insertInto('sandbox_policies')
    .values({ org_id: orgId, body: JSON.stringify(policy), updated_by: by, updated_at: now })
    .onConflict((oc) =>
      oc.column('org_id').doUpdateSet({ body: JSON.stringify(policy), updated_by: by, updated_at: now }),
    )
    .execute();
}
