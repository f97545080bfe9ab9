import type { Db } from '../db/database.js';
import { apiKeyByPrefix } from '../db/hot-queries.js';
import type { Role } from '../db/schema.js';
import { ApiError } from '../http/api-error.js';
import type { Authenticator } from '../http/routes.js';
import { isPermission, type Permission, ROLE_PERMISSIONS } from './permissions.js';
import type { Principal } from './principal.js';
import type { SessionResolver } from './sessions.js';
import { tokenMatches, tokenPrefix } from './tokens.js';

export type { SessionResolver } from './sessions.js';

/** How often a key's `last_used_at` is written (at most), to keep the hot path read-only. */
const LAST_USED_EVERY_MS = 60 * 1000;

/**
 * Build the authenticator: `Authorization: Bearer alk_…` API keys, else the session cookie.
 * Everything is re-read per request (user role, disabled flag, key revocation and expiry),
 * so a change to a user or key takes effect at once.
 */
export function createAuthenticator(db: Db, sessions?: SessionResolver): Authenticator {
  return async (req, reply) => {
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = /^Bearer\s+(\S+)$/i.exec(header);
      if (m?.[1] === undefined)
        throw ApiError.unauthorized('malformed Authorization header; expected "Bearer <api key>"');
      return apiKeyPrincipal(db, m[1]);
    }
    return sessions === undefined ? undefined : sessions(req, reply);
  };
}

/** Resolve an API key to its principal, or throw 401. */
export async function apiKeyPrincipal(db: Db, token: string): Promise<Principal> {
  const prefix = tokenPrefix(token, 'alk');
  if (prefix === undefined) throw ApiError.unauthorized('invalid API key');
  // Read on every request (a compiled query, not a cached answer): revocation is immediate.
  const row = await apiKeyByPrefix.first(db.kysely, { prefix });
  if (row === undefined || !tokenMatches(token, row.key_hash)) throw ApiError.unauthorized('invalid API key');
  if (row.revoked_at !== null) throw ApiError.unauthorized('API key revoked');
  if (row.expires_at !== null && row.expires_at <= new Date().toISOString())
    throw ApiError.unauthorized('API key expired');
  if (row.disabled !== 0 || row.user_org !== row.org_id)
    throw ApiError.unauthorized('the owner of this API key is disabled');
  const now = Date.now();
  if (row.last_used_at === null || now - Date.parse(row.last_used_at) >= LAST_USED_EVERY_MS) {
    await db.kysely
      .updateTable('api_keys')
      .set({ last_used_at: new Date(now).toISOString() })
      .where('id', '=', row.key_id)
      .execute();
  }
  const scopes = (JSON.parse(row.scopes) as string[]).filter(isPermission);
  const rolePerms = new Set<Permission>(ROLE_PERMISSIONS[row.role as Role]);
  const permissions = new Set<Permission>(scopes.filter((s) => rolePerms.has(s)));
  return Object.freeze({
    kind: 'api_key' as const,
    orgId: row.org_id,
    userId: row.user_id,
    username: row.username,
    role: row.role as Role,
    permissions,
    keyId: row.key_id,
  });
}
