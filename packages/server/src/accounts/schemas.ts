import { z } from 'zod';
import { PERMISSIONS } from '../auth/permissions.js';

/** Usernames: lower-case letters, digits, `.`, `_`, `-`; unique per organisation. */
export const Username = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9._-]{0,63}$/,
    'lower-case letters, digits, ".", "_" and "-", starting with a letter or digit, at most 64 characters',
  );

/** Organisation names: lower-case letters, digits and `-`; unique per instance. */
export const OrgName = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9-]{0,62}$/,
    'lower-case letters, digits and "-", starting with a letter or digit, at most 63 characters',
  );

/** A password people choose: at least 12 characters (length beats composition rules). */
export const NewPassword = z.string().min(12, 'at least 12 characters').max(1024, 'at most 1024 characters');

export const RoleName = z.enum(['owner', 'admin', 'operator', 'viewer']);

export const PermissionName = z.enum(PERMISSIONS);

export const IdParams = z.strictObject({ id: z.uuid() });

export const OrgOut = z.object({ id: z.string(), name: z.string(), created_at: z.string() });

export const UserOut = z.object({
  id: z.string(),
  username: z.string(),
  role: RoleName,
  disabled: z.boolean(),
  must_change_password: z.boolean(),
  created_at: z.string(),
});

export const ApiKeyOut = z.object({
  id: z.string(),
  name: z.string(),
  prefix: z.string().describe('public part of the key (`alk_<id>`), shown in listings'),
  scopes: z.array(PermissionName),
  user: z.object({ id: z.string(), username: z.string() }),
  expires_at: z.string().nullable(),
  revoked_at: z.string().nullable(),
  created_at: z.string(),
  last_used_at: z.string().nullable(),
});

/** Shape rows into API objects. */
export function userOut(u: {
  id: string;
  username: string;
  role: string;
  disabled: number;
  must_change_password: number;
  created_at: string;
}): z.infer<typeof UserOut> {
  return {
    id: u.id,
    username: u.username,
    role: u.role as z.infer<typeof RoleName>,
    disabled: u.disabled !== 0,
    must_change_password: u.must_change_password !== 0,
    created_at: u.created_at,
  };
}

/** True when a database error is a unique-constraint violation (SQLite or Postgres). */
export function isUniqueViolation(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505';
}
