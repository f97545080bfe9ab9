// Test support for the audit tests: API keys, a second organisation, runners, runner chains.
// Not part of the package surface.
import { randomUUID } from 'node:crypto';
import { type AuditEvent, appendEvent, type ChainHead } from '@airlock/core';
import { newToken } from '../auth/tokens.js';
import type { Db } from '../db/database.js';
import type { Role } from '../db/schema.js';

/** The bootstrap owner, and API keys minted directly (shared with the other test helpers). */
export { mintTestKey as createApiKey, ownerId as ownerOf } from '../testing/keys.js';

/** A second organisation (created after the bootstrap one) with a user of the given role. */
export async function createOrg(
  db: Db,
  name: string,
  role: Role = 'owner',
): Promise<{ orgId: string; userId: string }> {
  const orgId = randomUUID();
  const userId = randomUUID();
  await db.kysely
    .insertInto('orgs')
    .values({ id: orgId, name, created_at: new Date(Date.now() + 1000).toISOString() })
    .execute();
  await db.kysely
    .insertInto('users')
    .values({
      id: userId,
      org_id: orgId,
      username: `${name}-user`,
      password_hash: 'x',
      role,
      disabled: 0,
      must_change_password: 0,
      created_at: new Date().toISOString(),
    })
    .execute();
  return { orgId, userId };
}

export async function addUser(db: Db, orgId: string, username: string, role: Role): Promise<string> {
  const userId = randomUUID();
  await db.kysely
    .insertInto('users')
    .values({
      id: userId,
      org_id: orgId,
      username,
      password_hash: 'x',
      role,
      disabled: 0,
      must_change_password: 0,
      created_at: new Date().toISOString(),
    })
    .execute();
  return userId;
}

export async function createRunner(db: Db, orgId: string, name: string): Promise<string> {
  const id = randomUUID();
  await db.kysely
    .insertInto('runners')
    .values({
      id,
      org_id: orgId,
      name,
      labels: '{}',
      status: 'online',
      version: null,
      bootstrap_hash: null,
      bootstrap_expires_at: null,
      token_hash: null,
      token_prefix: null,
      state: null,
      created_at: new Date().toISOString(),
      last_seen_at: null,
      revoked_at: null,
      chain_seq: null,
      chain_hash: null,
    })
    .execute();
  return id;
}

/** The next event of a runner's security log. */
export function runnerEvent(head: ChainHead | null, runner: string, n: number): AuditEvent {
  return appendEvent(head, {
    id: `req-${runner}-${n}`,
    time: new Date().toISOString(),
    kind: 'action.attempt',
    principal: { type: 'user', id: 'u1', name: 'alice' },
    runner,
    action: 'linux.uptime',
    pack_hash: null,
    args_digest: `sha256:${'1'.repeat(64)}`,
    args: {},
    reason: 'test',
    status: 'success',
    exit_code: 0,
    duration_ms: 3,
    output_digest: null,
    output_bytes: 0,
    truncated: false,
    clamped: [],
    error: null,
  });
}

/** A runner chain of `count` events. */
export function runnerChain(runner: string, count: number, start: ChainHead | null = null): AuditEvent[] {
  const out: AuditEvent[] = [];
  let head = start;
  for (let i = 0; i < count; i++) {
    const e = runnerEvent(head, runner, i);
    out.push(e);
    head = { seq: e.seq, hash: e.hash };
  }
  return out;
}
