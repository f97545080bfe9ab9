import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ServerAuditLog } from '../audit/audit-log.js';
import { generatePassword, hashPassword, verifyPassword } from '../auth/passwords.js';
import type { Db } from '../db/database.js';

/** What first start created, or found. */
export interface BootstrapResult {
  readonly orgId: string;
  readonly username: string;
  /** The one-time password, while it has not been changed; undefined afterwards. */
  readonly password: string | undefined;
  readonly created: boolean;
}

/**
 * First start: create the `default` organisation and an `admin` owner with a one-time
 * password, kept (0600) in `credentialsFile` only until it is changed, so a local
 * `npm start` can show it again.
 */
export async function bootstrapOwner(db: Db, audit: ServerAuditLog, credentialsFile: string): Promise<BootstrapResult> {
  const org = await db.kysely.selectFrom('orgs').select(['id']).orderBy('created_at').limit(1).executeTakeFirst();
  if (org !== undefined) {
    const owner = await db.kysely
      .selectFrom('users')
      .select(['username', 'password_hash', 'must_change_password'])
      .where('org_id', '=', org.id)
      .where('role', '=', 'owner')
      .orderBy('created_at')
      .limit(1)
      .executeTakeFirst();
    let password: string | undefined;
    if (owner !== undefined && owner.must_change_password === 1 && existsSync(credentialsFile)) {
      const saved = readFileSync(credentialsFile, 'utf8').trim();
      if (await verifyPassword(saved, owner.password_hash)) password = saved;
    }
    if (password === undefined && existsSync(credentialsFile)) rmSync(credentialsFile, { force: true });
    return { orgId: org.id, username: owner?.username ?? 'admin', password, created: false };
  }
  const orgId = randomUUID();
  const userId = randomUUID();
  const password = generatePassword();
  const now = new Date().toISOString();
  await db.kysely.transaction().execute(async (trx) => {
    await trx.insertInto('orgs').values({ id: orgId, name: 'default', created_at: now }).execute();
    await trx
      .insertInto('users')
      .values({
        id: userId,
        org_id: orgId,
        username: 'admin',
        password_hash: await hashPassword(password),
        role: 'owner',
        disabled: 0,
        must_change_password: 1,
        created_at: now,
      })
      .execute();
  });
  mkdirSync(dirname(credentialsFile), { recursive: true, mode: 0o700 });
  writeFileSync(credentialsFile, `${password}\n`, { mode: 0o600 });
  chmodSync(credentialsFile, 0o600);
  await audit.record({
    orgId,
    kind: 'account.bootstrap',
    actor: { type: 'system', id: 'airlock' },
    data: { user: 'admin', role: 'owner' },
  });
  return { orgId, username: 'admin', password, created: true };
}
