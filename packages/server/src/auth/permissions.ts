import type { Role } from '../db/schema.js';

/**
 * Permissions, checked on every request. A user's role grants a set; an API key carries
 * scopes that can only narrow its owner's set (intersection computed per request, so a
 * demoted or disabled owner shrinks every key they minted at once).
 */
export const PERMISSIONS = [
  'runs:read',
  'runs:write',
  'runners:read',
  'runners:write',
  'packs:read',
  'packs:trust',
  'audit:read',
  'users:read',
  'users:write',
  'keys:write',
] as const;

export type Permission = (typeof PERMISSIONS)[number];

const VIEWER: readonly Permission[] = ['runs:read', 'runners:read', 'packs:read', 'audit:read'];
const OPERATOR: readonly Permission[] = [...VIEWER, 'runs:write', 'keys:write'];
const ADMIN: readonly Permission[] = [...OPERATOR, 'runners:write', 'packs:trust', 'users:read', 'users:write'];

/** What each role may do. Pinned by a test. */
export const ROLE_PERMISSIONS: Readonly<Record<Role, readonly Permission[]>> = Object.freeze({
  viewer: VIEWER,
  operator: OPERATOR,
  admin: ADMIN,
  owner: ADMIN,
});

export const ROLES: readonly Role[] = ['owner', 'admin', 'operator', 'viewer'];

/** Rank for "may act on someone of that role" checks: nobody manages a higher role. */
export const ROLE_RANK: Readonly<Record<Role, number>> = { viewer: 0, operator: 1, admin: 2, owner: 3 };

export function isPermission(s: string): s is Permission {
  return (PERMISSIONS as readonly string[]).includes(s);
}
