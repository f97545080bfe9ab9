import type { Kysely } from 'kysely';
import type { Db } from '../db/database.js';
import type { Database } from '../db/schema.js';

/** Tables and columns added by migration 0200-audit (kept here: src/audit owns them). */
export type AuditTables = {
  audit_signing_keys: { key_id: string; public_key: string; created_at: string };
  runner_events: { link: RunnerEventLink };
};

/** How a mirrored runner event joined the mirror: see docs/audit.md. */
export type RunnerEventLink = 'start' | 'linked' | 'gap' | 'fork';

/** The database typed with the audit additions. */
export function auditDb(db: Db): Kysely<Database & AuditTables> {
  return db.kysely.withTables<AuditTables>();
}
