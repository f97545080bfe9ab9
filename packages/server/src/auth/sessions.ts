import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerConfig } from '../context.js';
import type { Db } from '../db/database.js';
import type { Role } from '../db/schema.js';
import { ApiError } from '../http/api-error.js';
import { CSRF_HEADER, csrfMatches, isUnsafeMethod, newCsrfToken } from './csrf.js';
import { type Permission, ROLE_PERMISSIONS } from './permissions.js';
import type { Principal } from './principal.js';
import { hashToken } from './tokens.js';

/** The dashboard session cookie. */
export const SESSION_COOKIE = 'airlock_session';
/** Idle lifetime: each use (at most once a minute) pushes the expiry this far out again. */
export const SESSION_IDLE_MS = 12 * 60 * 60 * 1000;
/** Absolute lifetime: a session ends this long after login however active it is. */
export const SESSION_MAX_MS = 7 * 24 * 60 * 60 * 1000;
/** How often a used session's expiry and cookie are refreshed. */
const SLIDE_EVERY_MS = 60 * 1000;

const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

/** The session behind a cookie-authenticated request (set by the resolver). */
export interface SessionInfo {
  readonly id: string;
  readonly userId: string;
  readonly csrfToken: string;
  readonly expiresAt: string;
}

const sessionsByRequest = new WeakMap<FastifyRequest, SessionInfo>();

/** The session the current request was authenticated with, if it used the cookie. */
export function sessionOf(req: FastifyRequest): SessionInfo | undefined {
  return sessionsByRequest.get(req);
}

/** Resolves a dashboard session cookie; may refresh the cookie, so it gets the reply too. */
export type SessionResolver = (req: FastifyRequest, reply: FastifyReply) => Promise<Principal | undefined>;

function cookieOptions(config: ServerConfig, maxAgeMs: number) {
  return {
    httpOnly: true,
    sameSite: 'strict' as const,
    path: '/',
    secure: config.publicUrl.toLowerCase().startsWith('https:'),
    maxAge: Math.max(0, Math.round(maxAgeMs / 1000)),
  };
}

/** Set the session cookie on a reply. */
export function setSessionCookie(reply: FastifyReply, config: ServerConfig, token: string, expiresAt: string): void {
  reply.setCookie(SESSION_COOKIE, token, cookieOptions(config, Date.parse(expiresAt) - Date.now()));
}

/** Remove the session cookie from the browser. */
export function clearSessionCookie(reply: FastifyReply, config: ServerConfig): void {
  const { maxAge: _, ...opts } = cookieOptions(config, 0);
  reply.clearCookie(SESSION_COOKIE, opts);
}

/**
 * Start a session for a user: a random 256-bit token for the cookie, of which the
 * database keeps only the SHA-256 (the session id), plus a CSRF token.
 */
export async function createSession(
  db: Db,
  userId: string,
): Promise<{ token: string; csrfToken: string; id: string; expiresAt: string }> {
  const token = randomBytes(32).toString('base64url');
  const id = hashToken(token);
  const csrfToken = newCsrfToken();
  const now = new Date();
  const expiresAt = new Date(now.getTime() + SESSION_IDLE_MS).toISOString();
  await db.kysely
    .insertInto('sessions')
    .values({
      id,
      user_id: userId,
      csrf_token: csrfToken,
      created_at: now.toISOString(),
      expires_at: expiresAt,
      last_seen_at: now.toISOString(),
    })
    .execute();
  return { token, csrfToken, id, expiresAt };
}

/** The session id (stored hash) for a presented cookie value, or undefined when malformed. */
export function sessionIdFor(token: string | undefined): string | undefined {
  return token !== undefined && TOKEN_RE.test(token) ? hashToken(token) : undefined;
}

/** End one session. */
export async function deleteSession(db: Db, id: string): Promise<void> {
  await db.kysely.deleteFrom('sessions').where('id', '=', id).execute();
}

/** End every session of a user, optionally keeping one (the caller's own). */
export async function deleteUserSessions(db: Db, userId: string, except?: string): Promise<number> {
  let q = db.kysely.deleteFrom('sessions').where('user_id', '=', userId);
  if (except !== undefined) q = q.where('id', '!=', except);
  const res = await q.executeTakeFirst();
  return Number(res.numDeletedRows);
}

/** Delete expired sessions; returns how many. */
export async function pruneSessions(db: Db): Promise<number> {
  const res = await db.kysely
    .deleteFrom('sessions')
    .where('expires_at', '<=', new Date().toISOString())
    .executeTakeFirst();
  return Number(res.numDeletedRows);
}

/**
 * The resolver for `createAuthenticator`: reads the `airlock_session` cookie, looks the
 * session up by its hash, re-reads the user (role, disabled) on every request, enforces
 * CSRF on unsafe methods, and slides the expiry (at most once a minute).
 */
export function sessionResolver(db: Db, config: ServerConfig): SessionResolver {
  return async (req, reply) => {
    const id = sessionIdFor(req.cookies[SESSION_COOKIE]);
    if (id === undefined) return undefined;
    const row = await db.kysely
      .selectFrom('sessions')
      .innerJoin('users', 'users.id', 'sessions.user_id')
      .select([
        'sessions.id',
        'sessions.csrf_token',
        'sessions.created_at',
        'sessions.expires_at',
        'sessions.last_seen_at',
        'users.id as user_id',
        'users.org_id',
        'users.username',
        'users.role',
        'users.disabled',
      ])
      .where('sessions.id', '=', id)
      .executeTakeFirst();
    const now = Date.now();
    if (row === undefined) return undefined;
    if (Date.parse(row.expires_at) <= now || row.disabled !== 0) {
      await deleteSession(db, id);
      return undefined;
    }
    if (isUnsafeMethod(req.method) && !csrfMatches(req.headers[CSRF_HEADER], row.csrf_token)) {
      throw ApiError.forbidden(
        `missing or wrong ${CSRF_HEADER} header (send the csrf_token from login or GET /api/v1/auth/me)`,
      );
    }
    let expiresAt = row.expires_at;
    if (now - Date.parse(row.last_seen_at) >= SLIDE_EVERY_MS) {
      expiresAt = new Date(Math.min(now + SESSION_IDLE_MS, Date.parse(row.created_at) + SESSION_MAX_MS)).toISOString();
      await db.kysely
        .updateTable('sessions')
        .set({ expires_at: expiresAt, last_seen_at: new Date(now).toISOString() })
        .where('id', '=', id)
        .execute();
      setSessionCookie(reply, config, req.cookies[SESSION_COOKIE] ?? '', expiresAt);
    }
    sessionsByRequest.set(req, { id, userId: row.user_id, csrfToken: row.csrf_token, expiresAt });
    return Object.freeze({
      kind: 'user' as const,
      orgId: row.org_id,
      userId: row.user_id,
      username: row.username,
      role: row.role as Role,
      permissions: new Set<Permission>(ROLE_PERMISSIONS[row.role as Role]),
      sessionId: id,
    });
  };
}

/**
 * Install session support on the app and return the resolver for `createAuthenticator`.
 * It also makes the API JSON-only by removing Fastify's default `text/plain` parser: a
 * browser may send `text/plain` (like form encodings) cross-site without a CORS preflight,
 * but not `application/json`, so JSON-only bodies back up SameSite and the CSRF header,
 * notably for login, which has no session yet. Other content types get 415.
 */
export function installSessions(app: FastifyInstance, db: Db, config: ServerConfig): SessionResolver {
  app.removeContentTypeParser('text/plain');
  return sessionResolver(db, config);
}
