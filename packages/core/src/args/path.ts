/** Lexical checks of absolute paths and component-wise prefix matching. */

/** Longest path accepted (Linux PATH_MAX). */
export const MAX_PATH_LENGTH = 4096;

/**
 * Why `p` is not an absolute, normalised, plain-ASCII path, or `undefined` when it is.
 * Non-ASCII is refused outright: lookalikes such as `／` (U+FF0F) or `․` (U+2024) would
 * otherwise pass a lexical check and mean something else to a person reading the log.
 */
export function checkAbsolutePath(p: string): string | undefined {
  if (p.length === 0) return 'must not be empty';
  if (p.length > MAX_PATH_LENGTH) return `must be at most ${MAX_PATH_LENGTH} characters`;
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c === 0) return 'must not contain NUL';
    if (c < 0x20 || c === 0x7f) return 'must not contain control characters';
    if (c > 0x7e) return 'must contain only ASCII characters (lookalike characters are refused)';
  }
  if (!p.startsWith('/')) return 'must be an absolute path';
  if (p === '/') return undefined;
  if (p.endsWith('/')) return "must not end with '/'";
  const segments = p.slice(1).split('/');
  if (segments.includes('')) return "must not contain '//'";
  if (segments.some((s) => s === '.' || s === '..')) return "must not contain '.' or '..' components";
  return undefined;
}

/** True when `p` is `prefix` or below it, on whole components (`/var/log` covers `/var/log/x`, not `/var/logs`). */
export function isUnderPrefix(p: string, prefix: string): boolean {
  if (prefix === '/') return p.startsWith('/');
  return p === prefix || p.startsWith(`${prefix}/`);
}
