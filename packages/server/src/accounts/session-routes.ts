import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { hashPassword, verifyPassword } from '../auth/passwords.js';
import { PERMISSIONS } from '../auth/permissions.js';
import { principalRecord } from '../auth/principal.js';
import type { FailureLimiter } from '../auth/rate-limit.js';
import {
  clearSessionCookie,
  createSession,
  deleteSession,
  SESSION_COOKIE,
  sessionIdFor,
  sessionOf,
  setSessionCookie,
} from '../auth/sessions.js';
import type { ServerContext } from '../context.js';
import { ApiError } from '../http/api-error.js';
import { NewPassword, OrgOut, RoleName } from './schemas.js';

let dummy: Promise<string> | undefined;
/** A hash of a random password, verified against when the user does not exist (same cost). */
function dummyHash(): Promise<string> {
  dummy ??= hashPassword(randomBytes(16).toString('hex'));
  return dummy;
}

/** The first organisation (created at bootstrap); its owners are the instance owners. */
export async function firstOrg(
  ctx: ServerContext,
): Promise<{ id: string; name: string; created_at: string } | undefined> {
  return ctx.db.kysely
    .selectFrom('orgs')
    .select(['id', 'name', 'created_at'])
    .orderBy('created_at')
    .orderBy('id')
    .limit(1)
    .executeTakeFirst();
}

function rateLimited(retryMs: number, what: string): ApiError {
  const secs = Math.ceil(retryMs / 1000);
  return new ApiError(429, 'rate_limited', `too many failed ${what}; try again in ${secs} s`);
}

const LoginUser = z.object({ id: z.string(), username: z.string(), role: RoleName, org: OrgOut });

/** Login, logout, who-am-I, password change. */
export function registerSessionRoutes(ctx: ServerContext, limiter: FailureLimiter): void {
  const { db, audit } = ctx;
  const credentialsFile = join(ctx.config.home, 'server', 'initial-admin-password');

  ctx.routes.add({
    method: 'POST',
    url: '/api/v1/auth/login',
    summary: 'Log in with a username and password; sets the airlock_session cookie and returns the CSRF token',
    tag: 'auth',
    auth: 'public',
    body: z.strictObject({
      org: z.string().min(1).max(100).optional().describe('organisation name; the first organisation when omitted'),
      username: z.string().min(1).max(200),
      password: z.string().min(1).max(1024),
    }),
    response: z.object({ user: LoginUser, csrf_token: z.string(), must_change_password: z.boolean() }),
    handler: async ({ req, reply, body }) => {
      const username = body.username.toLowerCase();
      const org =
        body.org === undefined
          ? await firstOrg(ctx)
          : await db.kysely
              .selectFrom('orgs')
              .select(['id', 'name', 'created_at'])
              .where('name', '=', body.org.toLowerCase())
              .executeTakeFirst();
      const key = `${org?.id ?? `?${body.org ?? ''}`}\u0000${username}\u0000${req.ip}`;
      const retry = limiter.retryAfterMs(key);
      if (retry > 0) {
        void reply.header('retry-after', String(Math.ceil(retry / 1000)));
        throw rateLimited(retry, 'logins for this user from your address');
      }
      const user =
        org === undefined
          ? undefined
          : await db.kysely
              .selectFrom('users')
              .select(['id', 'username', 'role', 'password_hash', 'disabled', 'must_change_password'])
              .where('org_id', '=', org.id)
              .where('username', '=', username)
              .executeTakeFirst();
      const ok = await verifyPassword(body.password, user?.password_hash ?? (await dummyHash()));
      if (user === undefined || org === undefined || !ok || user.disabled !== 0) {
        const reason =
          org === undefined ? 'unknown_org' : user === undefined ? 'unknown_user' : !ok ? 'wrong_password' : 'disabled';
        const reachedLimit = limiter.fail(key);
        await audit.record({
          orgId: org?.id ?? null,
          kind: 'auth.login',
          status: 'failure',
          actor: { type: 'user', id: user?.id ?? 'unknown', name: username },
          data: {
            username,
            org: org?.name ?? body.org ?? null,
            ip: req.ip,
            reason,
            ...(reachedLimit ? { rate_limited: true } : {}),
          },
          error: { code: 'unauthorized', message: reason },
        });
        throw ApiError.unauthorized('invalid organisation, username or password');
      }
      limiter.reset(key);
      const previous = sessionIdFor(req.cookies[SESSION_COOKIE]);
      if (previous !== undefined) await deleteSession(db, previous);
      await db.kysely
        .deleteFrom('sessions')
        .where('user_id', '=', user.id)
        .where('expires_at', '<=', new Date().toISOString())
        .execute();
      const session = await createSession(db, user.id);
      setSessionCookie(reply, ctx.config, session.token, session.expiresAt);
      await audit.record({
        orgId: org.id,
        kind: 'auth.login',
        actor: { type: 'user', id: user.id, name: user.username },
        data: { username: user.username, org: org.name, ip: req.ip, session: session.id.slice(0, 12) },
      });
      return {
        user: { id: user.id, username: user.username, role: user.role, org },
        csrf_token: session.csrfToken,
        must_change_password: user.must_change_password !== 0,
      };
    },
  });

  ctx.routes.add({
    method: 'POST',
    url: '/api/v1/auth/logout',
    summary: 'End the current dashboard session',
    tag: 'auth',
    auth: 'authenticated',
    status: 204,
    handler: async ({ req, reply, principal }) => {
      const session = sessionOf(req);
      if (principal === undefined || session === undefined) {
        throw ApiError.badRequest(
          'logout ends a dashboard session; an API key is revoked with DELETE /api/v1/api-keys/:id',
        );
      }
      await deleteSession(db, session.id);
      clearSessionCookie(reply, ctx.config);
      await audit.record({
        orgId: principal.orgId,
        kind: 'auth.logout',
        actor: principalRecord(principal),
        data: { ip: req.ip, session: session.id.slice(0, 12) },
      });
      return undefined;
    },
  });

  ctx.routes.add({
    method: 'GET',
    url: '/api/v1/auth/me',
    summary: 'Who is calling: user, organisation, effective permissions, and the CSRF token of a session',
    tag: 'auth',
    auth: 'authenticated',
    response: z.object({
      user: LoginUser,
      kind: z.enum(['user', 'api_key']),
      permissions: z.array(z.enum(PERMISSIONS)),
      must_change_password: z.boolean(),
      csrf_token: z.string().optional(),
      session_expires_at: z.string().optional(),
      key_id: z.string().optional(),
    }),
    handler: async ({ req, principal }) => {
      if (principal === undefined) throw ApiError.unauthorized();
      const row = await db.kysely
        .selectFrom('users')
        .innerJoin('orgs', 'orgs.id', 'users.org_id')
        .select([
          'users.must_change_password',
          'orgs.id as org_id',
          'orgs.name as org_name',
          'orgs.created_at as org_created_at',
        ])
        .where('users.id', '=', principal.userId)
        .executeTakeFirstOrThrow();
      const session = sessionOf(req);
      return {
        user: {
          id: principal.userId,
          username: principal.username,
          role: principal.role,
          org: { id: row.org_id, name: row.org_name, created_at: row.org_created_at },
        },
        kind: principal.kind,
        permissions: PERMISSIONS.filter((p) => principal.permissions.has(p)),
        must_change_password: row.must_change_password !== 0,
        ...(session === undefined ? {} : { csrf_token: session.csrfToken, session_expires_at: session.expiresAt }),
        ...(principal.keyId === undefined ? {} : { key_id: principal.keyId }),
      };
    },
  });

  ctx.routes.add({
    method: 'POST',
    url: '/api/v1/auth/password',
    summary: 'Change your own password (dashboard session only); ends your other sessions',
    tag: 'auth',
    auth: 'authenticated',
    body: z.strictObject({ current: z.string().min(1).max(1024), new: NewPassword }),
    status: 204,
    handler: async ({ req, principal, body }) => {
      const session = sessionOf(req);
      if (principal === undefined || session === undefined) {
        throw ApiError.forbidden(
          'changing a password needs a dashboard session (POST /api/v1/auth/login), not an API key',
        );
      }
      const key = `password\u0000${principal.userId}`;
      const retry = limiter.retryAfterMs(key);
      if (retry > 0) throw rateLimited(retry, 'password changes');
      const user = await db.kysely
        .selectFrom('users')
        .select(['password_hash'])
        .where('id', '=', principal.userId)
        .executeTakeFirstOrThrow();
      if (!(await verifyPassword(body.current, user.password_hash))) {
        limiter.fail(key);
        await audit.record({
          orgId: principal.orgId,
          kind: 'auth.password_changed',
          status: 'failure',
          actor: principalRecord(principal),
          data: { ip: req.ip, reason: 'wrong_current_password' },
          error: { code: 'bad_request', message: 'wrong current password' },
        });
        throw ApiError.badRequest('body.current: wrong password', [
          { field: 'body.current', message: 'wrong password' },
        ]);
      }
      if (body.new === body.current) {
        throw ApiError.badRequest('body.new: must differ from the current password', [
          { field: 'body.new', message: 'must differ from the current password' },
        ]);
      }
      limiter.reset(key);
      await db.kysely.transaction().execute(async (trx) => {
        await trx
          .updateTable('users')
          .set({ password_hash: await hashPassword(body.new), must_change_password: 0 })
          .where('id', '=', principal.userId)
          .execute();
        await trx
          .deleteFrom('sessions')
          .where('user_id', '=', principal.userId)
          .where('id', '!=', session.id)
          .execute();
      });
      let removedInitial = false;
      if (existsSync(credentialsFile)) {
        const saved = Buffer.from(readFileSync(credentialsFile, 'utf8').trim());
        const old = Buffer.from(body.current);
        if (saved.length === old.length && timingSafeEqual(saved, old)) {
          rmSync(credentialsFile, { force: true });
          removedInitial = true;
        }
      }
      await audit.record({
        orgId: principal.orgId,
        kind: 'auth.password_changed',
        actor: principalRecord(principal),
        data: {
          ip: req.ip,
          other_sessions_ended: true,
          ...(removedInitial ? { initial_password_file_removed: true } : {}),
        },
      });
      return undefined;
    },
  });
}
