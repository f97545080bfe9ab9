import type { Role } from '../db/schema.js';
import type { Permission } from './permissions.js';

/** Who is calling, resolved fresh for every request. Frozen. */
export interface Principal {
  /** `oauth`: an OAuth access token of an MCP client (keyId is `oauth:<client id>`). */
  readonly kind: 'user' | 'api_key' | 'oauth';
  readonly orgId: string;
  readonly userId: string;
  readonly username: string;
  readonly role: Role;
  /** Effective permissions: the role's, narrowed by the key's scopes. */
  readonly permissions: ReadonlySet<Permission>;
  readonly keyId?: string;
  readonly sessionId?: string;
}

/** The principal as recorded in runs and audit events. */
export function principalRecord(p: Principal): { type: string; id: string; name: string } {
  if (p.kind === 'oauth') return { type: 'oauth', id: p.keyId ?? p.userId, name: `${p.username} (OAuth client)` };
  return p.kind === 'api_key'
    ? { type: 'api_key', id: p.keyId ?? p.userId, name: `${p.username} (key)` }
    : { type: 'user', id: p.userId, name: p.username };
}
