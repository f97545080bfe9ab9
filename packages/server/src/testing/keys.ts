// Test support: mint API keys directly in the database (the accounts API does it for users).
import { randomUUID } from 'node:crypto';
import { newToken } from '../auth/tokens.js';
import type { Db } from '../db/database.js';

/** Insert an API key for a user; returns the token. */
export async function mintTestKey(db: Db, orgId: string, userId: string, scopes: readonly string[]): Promise<string> {
  const t = newToken('alk');
  await db.kysely
    .insertInto('api_keys')
    .values({
      id: randomUUID(),
      org_id: orgId,
      user_id: userId,
      name: 'test',
      prefix: t.prefix,
      key_hash: t.hash,
      scopes: JSON.stringify(scopes),
      expires_at: null,
      revoked_at: null,
      created_at: new Date().toISOString(),
      last_used_at: null,
    })
    .execute();
  return t.token;
}

/** The bootstrap owner's user id. */
export async function ownerId(db: Db, orgId: string): Promise<string> {
  const row = await db.kysely
    .selectFrom('users')
    .select('id')
    .where('org_id', '=', orgId)
    .where('role', '=', 'owner')
    .executeTakeFirstOrThrow();
  return row.id;
}

/** A tiny JSON client for tests. */
export function apiClient(base: string, key: string) {
  return async (method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> => {
    const res = await fetch(new URL(path, base), {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
  };
}
