import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Token kinds and their visible prefixes: API keys, runner tokens, runner bootstrap keys. */
export type TokenKind = 'alk' | 'alr' | 'alb';

/**
 * A new secret token `<kind>_<id>_<secret>`: `id` (10 hex chars) is public and indexed,
 * `secret` carries 192 bits. Only the SHA-256 of the whole token is stored: the tokens are
 * random, so a fast hash is enough (no dictionary to attack), and lookups stay cheap.
 */
export function newToken(kind: TokenKind): { token: string; prefix: string; hash: string } {
  const id = randomBytes(5).toString('hex');
  const secret = randomBytes(24).toString('base64url');
  const token = `${kind}_${id}_${secret}`;
  return { token, prefix: `${kind}_${id}`, hash: hashToken(token) };
}

/** The stored form of a token. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Split a presented token into its public prefix; undefined when malformed. */
export function tokenPrefix(token: string, kind: TokenKind): string | undefined {
  let shape = tokenShapes.get(kind);
  if (shape === undefined) {
    shape = new RegExp(`^(${kind}_[0-9a-f]{10})_[A-Za-z0-9_-]{32}$`);
    tokenShapes.set(kind, shape);
  }
  return shape.exec(token)?.[1];
}

/** One compiled pattern per token kind (every API request checks one). */
const tokenShapes = new Map<TokenKind, RegExp>();

/** Constant-time comparison of a presented token with a stored hash. */
export function tokenMatches(token: string, storedHash: string): boolean {
  const a = Buffer.from(hashToken(token), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}
