import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { AirlockServer } from '../app.js';
import { apiKeyPrincipal } from '../auth/authenticate.js';
import { ROLE_PERMISSIONS } from '../auth/permissions.js';
import { newToken } from '../auth/tokens.js';
import { decidePack } from '../packs/pack-store.js';
import { createRunner, redeemBootstrapKey, runnerForToken } from '../runners/runner-store.js';

// Used by `airlock up` (npm start) to wire a complete local installation. Every step is an
// ordinary, audited operation of the control plane, done on the operator's behalf.

function saveSecret(file: string, value: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${value}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
}

/** A runner token for the local runner, created (and saved 0600) on first start. */
export async function ensureLocalRunnerToken(server: AirlockServer, name: string, tokenFile: string): Promise<string> {
  const { db } = server.ctx;
  if (existsSync(tokenFile)) {
    const token = readFileSync(tokenFile, 'utf8').trim();
    if ((await runnerForToken(db, token)) !== undefined) return token;
  }
  const orgId = server.bootstrap.orgId;
  const existing = await db.kysely
    .selectFrom('runners')
    .select(['id', 'name'])
    .where('org_id', '=', orgId)
    .where('name', '=', name)
    .executeTakeFirst();
  const runnerName = existing === undefined ? name : `${name}-${randomUUID().slice(0, 8)}`;
  const { row, bootstrapKey } = await createRunner(db, orgId, runnerName, { env: 'local' });
  await server.ctx.audit.record({
    orgId,
    kind: 'runner.created',
    actor: { type: 'system', id: 'airlock up' },
    runner: row.id,
    data: { name: runnerName },
  });
  const redeemed = await redeemBootstrapKey(db, bootstrapKey);
  if (redeemed === undefined) throw new Error('could not redeem the local runner bootstrap key');
  saveSecret(tokenFile, redeemed.token);
  return redeemed.token;
}

/** An API key of the first owner for local use (curl examples, MCP config), saved 0600. */
export async function ensureLocalApiKey(server: AirlockServer, keyFile: string): Promise<string> {
  const { db } = server.ctx;
  if (existsSync(keyFile)) {
    const token = readFileSync(keyFile, 'utf8').trim();
    try {
      await apiKeyPrincipal(db, token);
      return token;
    } catch {
      // revoked or expired: mint a new one
    }
  }
  const orgId = server.bootstrap.orgId;
  const owner = await db.kysely
    .selectFrom('users')
    .select('id')
    .where('org_id', '=', orgId)
    .where('role', '=', 'owner')
    .orderBy('created_at')
    .executeTakeFirstOrThrow();
  const t = newToken('alk');
  await db.kysely
    .insertInto('api_keys')
    .values({
      id: randomUUID(),
      org_id: orgId,
      user_id: owner.id,
      name: 'local (npm start)',
      prefix: t.prefix,
      key_hash: t.hash,
      scopes: JSON.stringify(ROLE_PERMISSIONS.operator),
      expires_at: new Date(Date.now() + 90 * 86_400_000).toISOString(),
      revoked_at: null,
      created_at: new Date().toISOString(),
      last_used_at: null,
    })
    .execute();
  await server.ctx.audit.record({
    orgId,
    kind: 'api_key.created',
    actor: { type: 'system', id: 'airlock up' },
    data: { prefix: t.prefix, name: 'local (npm start)' },
  });
  saveSecret(keyFile, t.token);
  return t.token;
}

/** Trust pending pack versions whose hashes the operator vouches for (the bundled catalog). */
export async function trustPackHashes(
  server: AirlockServer,
  hashes: ReadonlySet<string>,
  comment: string,
): Promise<string[]> {
  const { db, audit } = server.ctx;
  const pending = await db.kysely
    .selectFrom('packs')
    .selectAll()
    .where('org_id', '=', server.bootstrap.orgId)
    .where('status', '=', 'pending')
    .execute();
  const trusted: string[] = [];
  for (const p of pending) {
    if (!hashes.has(p.hash)) continue;
    await decidePack(db, audit, p, 'trusted', { type: 'system', id: 'airlock up', name: 'airlock up' }, comment);
    trusted.push(p.name);
  }
  return trusted;
}
