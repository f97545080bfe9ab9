import { randomBytes, timingSafeEqual } from 'node:crypto';

/** Methods that change state; a cookie-authenticated request with one of these needs the CSRF header. */
const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The header a dashboard sends with every unsafe request: the session's CSRF token. */
export const CSRF_HEADER = 'x-csrf-token';

export function isUnsafeMethod(method: string): boolean {
  return UNSAFE.has(method.toUpperCase());
}

/** A fresh per-session CSRF token (256 bits). */
export function newCsrfToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Constant-time comparison of the presented header with the session's token. */
export function csrfMatches(presented: string | string[] | undefined, expected: string): boolean {
  if (typeof presented !== 'string' || presented.length === 0) return false;
  const a = Buffer.from(presented, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}
