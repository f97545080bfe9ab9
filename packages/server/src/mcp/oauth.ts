import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isPermission, PERMISSIONS, type Permission, ROLE_PERMISSIONS } from '../auth/permissions.js';
import { type Principal, principalRecord } from '../auth/principal.js';
import { hashToken } from '../auth/tokens.js';
import type { ServerContext } from '../context.js';
import type { Role } from '../db/schema.js';
import { ApiError } from '../http/api-error.js';
import { ClientMetadataError, fetchClientMetadata, isClientMetadataUrl } from './client-metadata.js';

/** Lifetimes (seconds). Access tokens are short-lived; refresh tokens rotate on every use. */
export const OAUTH_TTL = {
  code: 60,
  request: 10 * 60,
  access: Number(process.env['AIRLOCK_OAUTH_ACCESS_TTL_S'] ?? 600),
  refresh: 30 * 24 * 3600,
};

type OAuthTables = {
  oauth_clients: { id: string; name: string; redirect_uris: string; metadata: string; created_at: string };
  oauth_requests: {
    id: string;
    client_id: string;
    redirect_uri: string;
    state: string | null;
    code_challenge: string;
    scopes: string;
    resource: string;
    created_at: string;
    expires_at: string;
    decided_at: string | null;
  };
  oauth_codes: {
    code_hash: string;
    grant_id: string;
    client_id: string;
    org_id: string;
    user_id: string;
    redirect_uri: string;
    code_challenge: string;
    scopes: string;
    resource: string;
    expires_at: string;
    used_at: string | null;
  };
  oauth_tokens: {
    token_hash: string;
    kind: 'access' | 'refresh';
    grant_id: string;
    client_id: string;
    org_id: string;
    user_id: string;
    scopes: string;
    resource: string;
    created_at: string;
    expires_at: string;
    used_at: string | null;
    revoked_at: string | null;
  };
};

export interface OAuthModule {
  resourceMetadataUrl(req: FastifyRequest): string;
  /** Resolve an access token for /mcp: its principal (scopes ∩ the user's current role), or throw 401. */
  principalForAccessToken(
    token: string,
    req: FastifyRequest,
  ): Promise<{ principal: Principal; clientId: string; expiresAt: number }>;
  close(): Promise<void>;
}

/** The OAuth error response of RFC 6749 §5.2. */
class OAuthFailure extends Error {
  constructor(
    readonly error: string,
    readonly description: string,
    readonly status = 400,
  ) {
    super(description);
  }
}

const secret = (bytes = 32): string => randomBytes(bytes).toString('base64url');
const s256 = (v: string): string => createHash('sha256').update(v).digest('base64url');
const isoIn = (s: number): string => new Date(Date.now() + s * 1000).toISOString();
const now = (): string => new Date().toISOString();

/** A redirect URI a public client may register: https, loopback http, or a private-use scheme (native apps). */
function redirectAllowed(uri: string): boolean {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return false;
  }
  if (u.hash !== '') return false;
  if (u.protocol === 'https:') return true;
  if (u.protocol === 'http:') return ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname);
  return /^[a-z][a-z0-9+.-]*\.[a-z0-9+.-]+:$/.test(u.protocol); // reverse-DNS private-use scheme
}

function parseScopes(scope: string | undefined): Permission[] | undefined {
  if (scope === undefined || scope.trim() === '') return undefined;
  const parts = scope.trim().split(/\s+/);
  const bad = parts.filter((p) => !isPermission(p));
  if (bad.length > 0)
    throw new OAuthFailure(
      'invalid_scope',
      `unknown scope ${bad.join(', ')}; scopes are airlock permissions (${PERMISSIONS.join(' ')})`,
    );
  return parts as Permission[];
}

/**
 * The server's URLs: from the configured public URL, or, when that names port 0 (a server
 * started on an ephemeral port, as in tests), from the request's Host header.
 */
export function urlsFor(ctx: ServerContext, req: FastifyRequest): { base: string; issuer: string; resource: string } {
  let base = ctx.config.publicUrl.replace(/\/+$/, '');
  try {
    if (new URL(base).port === '0' && req.headers.host !== undefined) base = `${req.protocol}://${req.headers.host}`;
  } catch {
    base = `${req.protocol}://${req.headers.host ?? 'localhost'}`;
  }
  return { base, issuer: base, resource: `${base}/mcp` };
}

const html = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** OAuth 2.1 authorization server and protected-resource metadata for the MCP endpoint. */
export async function registerOAuth(ctx: ServerContext, app: FastifyInstance): Promise<OAuthModule> {
  const db = ctx.db.kysely.withTables<OAuthTables>();
  const resourceMetadata = (req: FastifyRequest) => {
    const { base, issuer, resource } = urlsFor(ctx, req);
    return {
      resource,
      authorization_servers: [issuer],
      scopes_supported: [...PERMISSIONS],
      bearer_methods_supported: ['header'],
      resource_name: 'airlock MCP',
    };
  };
  for (const url of ['/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/mcp']) {
    app.get(url, async (req) => resourceMetadata(req));
  }
  const asMetadata = (req: FastifyRequest) => {
    const { base, issuer } = urlsFor(ctx, req);
    return {
      issuer,
      authorization_endpoint: `${base}/oauth/authorize`,
      token_endpoint: `${base}/oauth/token`,
      registration_endpoint: `${base}/oauth/register`,
      revocation_endpoint: `${base}/oauth/revoke`,
      response_types_supported: ['code'],
      response_modes_supported: ['query'],
      grant_types_supported: ['authorization_code', 'refresh_token'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['none'],
      revocation_endpoint_auth_methods_supported: ['none'],
      scopes_supported: [...PERMISSIONS],
      authorization_response_iss_parameter_supported: true,
      client_id_metadata_document_supported: true,
    };
  };
  for (const url of [
    '/.well-known/oauth-authorization-server',
    '/.well-known/oauth-authorization-server/mcp',
    '/.well-known/openid-configuration',
  ]) {
    app.get(url, async (req) => asMetadata(req));
  }

  const findClient = (id: string) => db.selectFrom('oauth_clients').selectAll().where('id', '=', id).executeTakeFirst();
  /**
   * A registered client, or a Client ID Metadata Document fetched now (at authorization) and
   * kept, so the token endpoint and the consent screen see the same client.
   */
  const resolveClient = async (id: string, refresh: boolean) => {
    if (!isClientMetadataUrl(id)) return findClient(id);
    const known = await findClient(id);
    if (known !== undefined && !refresh) return known;
    const doc = await fetchClientMetadata(id);
    const badUri = doc.redirectUris.find((u) => !redirectAllowed(u));
    if (badUri !== undefined) throw new ClientMetadataError(`redirect_uris: ${badUri} is not allowed`);
    const row = {
      id,
      name: doc.name,
      redirect_uris: JSON.stringify(doc.redirectUris),
      metadata: JSON.stringify(doc.metadata),
      created_at: now(),
    };
    if (known === undefined) await db.insertInto('oauth_clients').values(row).execute();
    else
      await db
        .updateTable('oauth_clients')
        .set({ name: row.name, redirect_uris: row.redirect_uris, metadata: row.metadata })
        .where('id', '=', id)
        .execute();
    return row;
  };

  // OAuth endpoints take form bodies (RFC 6749); the parser is scoped to this plugin only.
  await app.register(async (sub) => {
    sub.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: 64 * 1024 },
      (_req, body, done) => {
        done(null, Object.fromEntries(new URLSearchParams(body as string)));
      },
    );
    const fail = (reply: FastifyReply, err: unknown): FastifyReply => {
      if (err instanceof OAuthFailure) {
        return reply
          .code(err.status)
          .header('cache-control', 'no-store')
          .send({ error: err.error, error_description: err.description });
      }
      throw err;
    };

    // RFC 7591 dynamic client registration (public clients only).
    sub.post('/oauth/register', async (req, reply) => {
      try {
        const body = (req.body ?? {}) as Record<string, unknown>;
        const uris = body['redirect_uris'];
        if (
          !Array.isArray(uris) ||
          uris.length === 0 ||
          uris.length > 10 ||
          !uris.every((u) => typeof u === 'string' && u.length <= 2000)
        ) {
          throw new OAuthFailure('invalid_redirect_uri', 'redirect_uris: a list of 1 to 10 URIs is required');
        }
        const badUri = (uris as string[]).find((u) => !redirectAllowed(u));
        if (badUri !== undefined)
          throw new OAuthFailure(
            'invalid_redirect_uri',
            `redirect_uris: ${badUri} is not allowed (use https, http on loopback, or a private-use scheme)`,
          );
        const method = body['token_endpoint_auth_method'] ?? 'none';
        if (method !== 'none')
          throw new OAuthFailure(
            'invalid_client_metadata',
            'token_endpoint_auth_method: only "none" (public clients with PKCE) is supported',
          );
        const grants = (body['grant_types'] as unknown[] | undefined) ?? ['authorization_code', 'refresh_token'];
        if (!Array.isArray(grants) || grants.some((g) => g !== 'authorization_code' && g !== 'refresh_token')) {
          throw new OAuthFailure(
            'invalid_client_metadata',
            'grant_types: only authorization_code and refresh_token are supported',
          );
        }
        const name =
          typeof body['client_name'] === 'string' && body['client_name'].trim() !== ''
            ? body['client_name'].trim().slice(0, 200)
            : 'unnamed MCP client';
        const id = `mcp_${secret(16)}`;
        const issued = Math.floor(Date.now() / 1000);
        const meta = {
          client_id: id,
          client_id_issued_at: issued,
          client_name: name,
          redirect_uris: uris as string[],
          grant_types: grants as string[],
          response_types: ['code'],
          token_endpoint_auth_method: 'none',
          ...(typeof body['client_uri'] === 'string' ? { client_uri: body['client_uri'] } : {}),
          ...(typeof body['scope'] === 'string' ? { scope: body['scope'] } : {}),
        };
        await db
          .insertInto('oauth_clients')
          .values({ id, name, redirect_uris: JSON.stringify(uris), metadata: JSON.stringify(meta), created_at: now() })
          .execute();
        return reply.code(201).header('cache-control', 'no-store').send(meta);
      } catch (err) {
        return fail(reply, err);
      }
    });

    // Authorization endpoint: validate, remember the request, send the user to the consent page.
    sub.get('/oauth/authorize', async (req, reply) => {
      const { base, issuer, resource } = urlsFor(ctx, req);
      const q = req.query as Record<string, string | undefined>;
      let client: Awaited<ReturnType<typeof findClient>>;
      try {
        client = q['client_id'] === undefined ? undefined : await resolveClient(q['client_id'], true);
      } catch (err) {
        if (!(err instanceof ClientMetadataError)) throw err;
        return reply.code(400).type('text/html').send(errorPage('Client metadata refused', err.message));
      }
      const redirectUri = q['redirect_uri'];
      // Never redirect to an unverified URI: a bad client or redirect_uri is shown, not redirected.
      if (client === undefined)
        return reply
          .code(400)
          .type('text/html')
          .send(errorPage('Unknown client', 'The client_id is not registered with this server.'));
      const registered = JSON.parse(client.redirect_uris) as string[];
      if (redirectUri === undefined || !registered.includes(redirectUri)) {
        return reply
          .code(400)
          .type('text/html')
          .send(
            errorPage(
              'Redirect URI mismatch',
              'The redirect_uri does not exactly match one registered by this client.',
            ),
          );
      }
      const back = (params: Record<string, string>): FastifyReply => {
        const u = new URL(redirectUri);
        for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
        if (q['state'] !== undefined) u.searchParams.set('state', q['state']);
        u.searchParams.set('iss', issuer);
        return reply.redirect(u.toString(), 302);
      };
      if (q['response_type'] !== 'code')
        return back({ error: 'unsupported_response_type', error_description: 'only response_type=code is supported' });
      if (
        q['code_challenge_method'] !== 'S256' ||
        q['code_challenge'] === undefined ||
        !/^[A-Za-z0-9_-]{43}$/.test(q['code_challenge'])
      ) {
        return back({
          error: 'invalid_request',
          error_description: 'PKCE is required: code_challenge (43 chars, base64url) with code_challenge_method=S256',
        });
      }
      const res = q['resource'] ?? resource;
      if (res.replace(/\/+$/, '') !== resource)
        return back({ error: 'invalid_target', error_description: `resource must be ${resource}` });
      let scopes: Permission[];
      try {
        scopes = parseScopes(q['scope']) ?? [...PERMISSIONS];
      } catch (err) {
        return back({ error: 'invalid_scope', error_description: (err as Error).message });
      }
      const id = secret(18);
      await db
        .insertInto('oauth_requests')
        .values({
          id,
          client_id: client.id,
          redirect_uri: redirectUri,
          state: q['state'] ?? null,
          code_challenge: q['code_challenge'],
          scopes: JSON.stringify(scopes),
          resource,
          created_at: now(),
          expires_at: isoIn(OAUTH_TTL.request),
          decided_at: null,
        })
        .execute();
      return reply.redirect(`${base}/oauth/consent?request=${encodeURIComponent(id)}`, 302);
    });

    // Token endpoint: authorization_code (+ PKCE) and rotating refresh tokens.
    sub.post('/oauth/token', async (req, reply) => {
      const { resource } = urlsFor(ctx, req);
      try {
        const b = (req.body ?? {}) as Record<string, string | undefined>;
        const clientId = b['client_id'];
        if (clientId === undefined || (await findClient(clientId)) === undefined)
          throw new OAuthFailure('invalid_client', 'unknown client_id', 401);
        if (b['resource'] !== undefined && b['resource'].replace(/\/+$/, '') !== resource)
          throw new OAuthFailure('invalid_target', `resource must be ${resource}`);
        if (b['grant_type'] === 'authorization_code') {
          const code = b['code'] ?? '';
          const row = await db
            .selectFrom('oauth_codes')
            .selectAll()
            .where('code_hash', '=', hashToken(code))
            .executeTakeFirst();
          if (row === undefined || row.client_id !== clientId)
            throw new OAuthFailure('invalid_grant', 'unknown authorization code');
          // One use only, claimed atomically; a replay revokes what the first use issued (RFC 6749 §4.1.2).
          const claim = await db
            .updateTable('oauth_codes')
            .set({ used_at: now() })
            .where('code_hash', '=', row.code_hash)
            .where('used_at', 'is', null)
            .executeTakeFirst();
          if (Number(claim.numUpdatedRows) !== 1) {
            await revokeGrant(row.grant_id);
            throw new OAuthFailure(
              'invalid_grant',
              'authorization code already used; tokens issued from it are revoked',
            );
          }
          if (row.expires_at <= now()) throw new OAuthFailure('invalid_grant', 'authorization code expired');
          if (b['redirect_uri'] !== row.redirect_uri)
            throw new OAuthFailure('invalid_grant', 'redirect_uri does not match the authorization request');
          const verifier = b['code_verifier'] ?? '';
          if (!/^[A-Za-z0-9._~-]{43,128}$/.test(verifier) || s256(verifier) !== row.code_challenge)
            throw new OAuthFailure('invalid_grant', 'code_verifier does not match the code_challenge');
          await checkUser(row.org_id, row.user_id);
          if (row.resource !== resource)
            throw new OAuthFailure('invalid_target', 'the code was issued for another resource');
          const tokens = await issue(
            resource,
            row.grant_id,
            clientId,
            row.org_id,
            row.user_id,
            JSON.parse(row.scopes) as string[],
          );
          await ctx.audit.record({
            orgId: row.org_id,
            kind: 'oauth.token_issued',
            actor: { type: 'user', id: row.user_id },
            data: { client_id: clientId, scopes: JSON.parse(row.scopes) },
          });
          return reply.header('cache-control', 'no-store').send(tokens);
        }
        if (b['grant_type'] === 'refresh_token') {
          const rt = b['refresh_token'] ?? '';
          const row = await db
            .selectFrom('oauth_tokens')
            .selectAll()
            .where('token_hash', '=', hashToken(rt))
            .where('kind', '=', 'refresh')
            .executeTakeFirst();
          if (row === undefined || row.client_id !== clientId)
            throw new OAuthFailure('invalid_grant', 'unknown refresh token');
          if (row.revoked_at !== null) throw new OAuthFailure('invalid_grant', 'refresh token revoked');
          if (row.expires_at <= now()) throw new OAuthFailure('invalid_grant', 'refresh token expired');
          const claim = await db
            .updateTable('oauth_tokens')
            .set({ used_at: now() })
            .where('token_hash', '=', row.token_hash)
            .where('used_at', 'is', null)
            .executeTakeFirst();
          if (Number(claim.numUpdatedRows) !== 1) {
            // A rotated refresh token presented again: treat as stolen, end the whole grant.
            await revokeGrant(row.grant_id);
            throw new OAuthFailure('invalid_grant', 'refresh token already used; the grant is revoked');
          }
          await checkUser(row.org_id, row.user_id);
          let scopes = JSON.parse(row.scopes) as string[];
          const narrowed = parseScopes(b['scope']);
          if (narrowed !== undefined) {
            if (narrowed.some((s) => !scopes.includes(s)))
              throw new OAuthFailure('invalid_scope', 'a refresh cannot widen the granted scope');
            scopes = narrowed;
          }
          return reply
            .header('cache-control', 'no-store')
            .send(await issue(resource, row.grant_id, clientId, row.org_id, row.user_id, scopes));
        }
        throw new OAuthFailure('unsupported_grant_type', 'grant_type must be authorization_code or refresh_token');
      } catch (err) {
        return fail(reply, err);
      }
    });

    // RFC 7009 revocation: revoking either token ends the grant (all its tokens).
    sub.post('/oauth/revoke', async (req, reply) => {
      const b = (req.body ?? {}) as Record<string, string | undefined>;
      const t = b['token'];
      if (t !== undefined) {
        const row = await db
          .selectFrom('oauth_tokens')
          .select(['grant_id', 'client_id'])
          .where('token_hash', '=', hashToken(t))
          .executeTakeFirst();
        if (row !== undefined && (b['client_id'] === undefined || b['client_id'] === row.client_id))
          await revokeGrant(row.grant_id);
      }
      return reply.code(200).header('cache-control', 'no-store').send({});
    });
  });

  async function revokeGrant(grantId: string): Promise<void> {
    await db
      .updateTable('oauth_tokens')
      .set({ revoked_at: now() })
      .where('grant_id', '=', grantId)
      .where('revoked_at', 'is', null)
      .execute();
  }

  async function checkUser(orgId: string, userId: string): Promise<{ role: Role; username: string }> {
    const u = await ctx.db.kysely
      .selectFrom('users')
      .select(['role', 'disabled', 'org_id', 'username'])
      .where('id', '=', userId)
      .executeTakeFirst();
    if (u === undefined || u.disabled !== 0 || u.org_id !== orgId)
      throw new OAuthFailure('invalid_grant', 'the user of this grant is disabled or removed');
    return { role: u.role as Role, username: u.username };
  }

  async function issue(
    resource: string,
    grantId: string,
    clientId: string,
    orgId: string,
    userId: string,
    scopes: string[],
  ) {
    const access = `alo_${secret()}`;
    const refresh = `alf_${secret()}`;
    const created = now();
    const common = {
      grant_id: grantId,
      client_id: clientId,
      org_id: orgId,
      user_id: userId,
      scopes: JSON.stringify(scopes),
      resource,
      created_at: created,
      used_at: null,
      revoked_at: null,
    };
    await db
      .insertInto('oauth_tokens')
      .values([
        { ...common, token_hash: hashToken(access), kind: 'access', expires_at: isoIn(OAUTH_TTL.access) },
        { ...common, token_hash: hashToken(refresh), kind: 'refresh', expires_at: isoIn(OAUTH_TTL.refresh) },
      ])
      .execute();
    return {
      access_token: access,
      token_type: 'Bearer',
      expires_in: OAUTH_TTL.access,
      refresh_token: refresh,
      scope: scopes.join(' '),
    };
  }

  // ---- consent: an HTML page, and JSON endpoints the dashboard can use ----

  const loadRequest = async (id: string) => {
    const r = await db.selectFrom('oauth_requests').selectAll().where('id', '=', id).executeTakeFirst();
    if (r === undefined || r.expires_at <= now()) throw ApiError.notFound('authorization request');
    const client = await findClient(r.client_id);
    if (client === undefined) throw ApiError.notFound('client');
    return { r, client };
  };
  const requestView = (r: OAuthTables['oauth_requests'], client: OAuthTables['oauth_clients']) => ({
    id: r.id,
    client: {
      id: client.id,
      name: client.name,
      redirect_uri: r.redirect_uri,
      redirect_host: new URL(r.redirect_uri).host,
    },
    scopes: JSON.parse(r.scopes) as string[],
    resource: r.resource,
    expires_at: r.expires_at,
    decided: r.decided_at !== null,
  });

  ctx.routes.add({
    method: 'GET',
    url: '/api/v1/oauth/requests/:id',
    summary: 'A pending OAuth authorization request (for the consent screen): the client and the scope it asks for',
    tag: 'oauth',
    auth: 'authenticated',
    params: z.strictObject({ id: z.string().min(1).max(128) }),
    handler: async ({ params }) => {
      const { r, client } = await loadRequest(params.id);
      return requestView(r, client);
    },
  });

  ctx.routes.add({
    method: 'POST',
    url: '/api/v1/oauth/requests/:id/decision',
    summary: 'Approve or deny an OAuth authorization request as the signed-in user; returns where to send the browser',
    tag: 'oauth',
    auth: 'authenticated',
    params: z.strictObject({ id: z.string().min(1).max(128) }),
    body: z.strictObject({ approve: z.boolean() }),
    handler: async ({ req, principal, params, body }) => {
      const p = principal!;
      const { issuer } = urlsFor(ctx, req);
      const { r, client } = await loadRequest(params.id);
      const claim = await db
        .updateTable('oauth_requests')
        .set({ decided_at: now() })
        .where('id', '=', r.id)
        .where('decided_at', 'is', null)
        .executeTakeFirst();
      if (Number(claim.numUpdatedRows) !== 1) throw ApiError.conflict('this authorization request was already decided');
      const u = new URL(r.redirect_uri);
      if (!body.approve) {
        u.searchParams.set('error', 'access_denied');
        u.searchParams.set('error_description', 'the user denied the request');
      } else {
        // Granted scope: what the client asked for, within what the approving user may do now.
        const scopes = (JSON.parse(r.scopes) as string[]).filter((s) => p.permissions.has(s as Permission));
        const code = secret();
        await db
          .insertInto('oauth_codes')
          .values({
            code_hash: hashToken(code),
            grant_id: randomUUID(),
            client_id: client.id,
            org_id: p.orgId,
            user_id: p.userId,
            redirect_uri: r.redirect_uri,
            code_challenge: r.code_challenge,
            scopes: JSON.stringify(scopes),
            resource: r.resource,
            expires_at: isoIn(OAUTH_TTL.code),
            used_at: null,
          })
          .execute();
        await ctx.audit.record({
          orgId: p.orgId,
          kind: 'oauth.consent',
          actor: principalRecord(p),
          data: { client_id: client.id, client_name: client.name, scopes },
        });
        u.searchParams.set('code', code);
      }
      if (r.state !== null) u.searchParams.set('state', r.state);
      u.searchParams.set('iss', issuer);
      return { redirect_to: u.toString() };
    },
  });

  // The consent screen is a dashboard page (same CSP and sign-in as the rest of the dashboard);
  // this stable URL, where /oauth/authorize sends the browser, forwards to it.
  app.get('/oauth/consent', async (req: FastifyRequest, reply: FastifyReply) => {
    const id = (req.query as Record<string, string | undefined>)['request'] ?? '';
    return reply.header('cache-control', 'no-store').redirect(`/consent?request=${encodeURIComponent(id)}`, 302);
  });

  // ---- authorizations: the OAuth clients a user let act for them, revocable from the dashboard ----

  const authorizationView = async (orgId: string, userIds: Map<string, string>, grantId: string) => {
    const rows = await db
      .selectFrom('oauth_tokens')
      .selectAll()
      .where('grant_id', '=', grantId)
      .orderBy('created_at')
      .execute();
    const first = rows[0];
    const last = rows[rows.length - 1];
    if (first === undefined || last === undefined || first.org_id !== orgId) return undefined;
    const client = await findClient(first.client_id);
    const t = now();
    const live = rows.some(
      (r) => r.kind === 'refresh' && r.revoked_at === null && r.used_at === null && r.expires_at > t,
    );
    return {
      id: grantId,
      client: { id: first.client_id, name: client?.name ?? 'unknown client' },
      user: { id: first.user_id, username: userIds.get(first.user_id) ?? null },
      scopes: JSON.parse(last.scopes) as string[],
      created_at: first.created_at,
      last_refreshed_at: last.created_at,
      state: live ? 'active' : rows.every((r) => r.revoked_at !== null) ? 'revoked' : 'expired',
    };
  };
  const usernames = async (orgId: string) =>
    new Map(
      (await ctx.db.kysely.selectFrom('users').select(['id', 'username']).where('org_id', '=', orgId).execute()).map(
        (u) => [u.id, u.username] as const,
      ),
    );

  ctx.routes.add({
    method: 'GET',
    url: '/api/v1/oauth/authorizations',
    summary: 'OAuth clients authorized to act for you (with users:read, for everyone in the organisation)',
    tag: 'oauth',
    auth: 'authenticated',
    handler: async ({ principal }) => {
      const p = principal!;
      let q = db.selectFrom('oauth_tokens').select('grant_id').distinct().where('org_id', '=', p.orgId);
      if (!p.permissions.has('users:read')) q = q.where('user_id', '=', p.userId);
      const ids = (await q.execute()).map((r) => r.grant_id);
      const names = await usernames(p.orgId);
      const views = [];
      for (const id of ids) {
        const v = await authorizationView(p.orgId, names, id);
        if (v !== undefined) views.push(v);
      }
      views.sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
      return { authorizations: views };
    },
  });

  ctx.routes.add({
    method: 'POST',
    url: '/api/v1/oauth/authorizations/:id/revoke',
    summary: 'Revoke an OAuth authorization: every access and refresh token of it stops at once',
    tag: 'oauth',
    auth: 'authenticated',
    params: z.strictObject({ id: z.string().min(1).max(128) }),
    handler: async ({ principal, params }) => {
      const p = principal!;
      const v = await authorizationView(p.orgId, await usernames(p.orgId), params.id);
      if (v === undefined) throw ApiError.notFound('authorization');
      if (v.user.id !== p.userId && !p.permissions.has('users:write'))
        throw ApiError.forbidden("revoking another user's OAuth authorization needs the users:write permission");
      await revokeGrant(params.id);
      await ctx.audit.record({
        orgId: p.orgId,
        id: params.id,
        kind: 'oauth.revoked',
        actor: principalRecord(p),
        data: { client_id: v.client.id, client_name: v.client.name, user: v.user.id },
      });
      return { ...v, state: 'revoked' };
    },
  });

  return {
    resourceMetadataUrl: (req) => `${urlsFor(ctx, req).base}/.well-known/oauth-protected-resource/mcp`,
    async principalForAccessToken(token, req) {
      const { resource } = urlsFor(ctx, req);
      const row = await db
        .selectFrom('oauth_tokens')
        .selectAll()
        .where('token_hash', '=', hashToken(token))
        .where('kind', '=', 'access')
        .executeTakeFirst();
      if (row === undefined) throw ApiError.unauthorized('invalid access token');
      if (row.revoked_at !== null) throw ApiError.unauthorized('access token revoked');
      if (row.expires_at <= now()) throw ApiError.unauthorized('access token expired');
      if (row.resource !== resource) throw ApiError.unauthorized('access token is for another resource');
      let user: { role: Role; username: string };
      try {
        user = await checkUser(row.org_id, row.user_id);
      } catch {
        throw ApiError.unauthorized('the user of this token is disabled');
      }
      const role = new Set<Permission>(ROLE_PERMISSIONS[user.role]);
      const permissions = new Set<Permission>(
        (JSON.parse(row.scopes) as string[]).filter((s): s is Permission => isPermission(s) && role.has(s)),
      );
      const principal: Principal = Object.freeze({
        kind: 'oauth' as const,
        orgId: row.org_id,
        userId: row.user_id,
        username: user.username,
        role: user.role,
        permissions,
        keyId: `oauth:${row.client_id}`,
      });
      return { principal, clientId: row.client_id, expiresAt: Math.floor(Date.parse(row.expires_at) / 1000) };
    },
    async close() {},
  };
}

function errorPage(title: string, text: string): string {
  return `<!doctype html><meta charset="utf-8"><title>${html(title)}</title><body style="font-family:sans-serif;max-width:40em;margin:3em auto"><h1>${html(title)}</h1><p>${html(text)}</p></body>`;
}
