import { createHash, randomBytes } from 'node:crypto';
import { createAirlockMcpServer } from '@airlock/mcp';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { type AuthInfo, createMcpHandler, InMemoryServerEventBus } from '@modelcontextprotocol/server';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { apiKeyPrincipal } from '../auth/authenticate.js';
import type { Principal } from '../auth/principal.js';
import type { ServerContext } from '../context.js';
import { ApiError } from '../http/api-error.js';
import type { ModuleHandle } from '../modules.js';
import { activeHub } from '../runners/routes.js';
import { listActionsFor, ServerBackend } from './backend.js';
import { LegacySessions } from './legacy-sessions.js';
import { type OAuthModule, registerOAuth } from './oauth.js';

/** How often the tool surface (trust, runners) is compared for `notifications/tools/list_changed`. */
const WATCH_MS = 1000;

/** Origins allowed to call /mcp from a browser: the server's own, plus AIRLOCK_MCP_ALLOWED_ORIGINS (comma-separated). */
function allowedOrigins(ctx: ServerContext): Set<string> {
  const out = new Set<string>();
  try {
    out.add(new URL(ctx.config.publicUrl).origin);
  } catch {
    // a bad public URL leaves only the configured list
  }
  for (const o of (process.env['AIRLOCK_MCP_ALLOWED_ORIGINS'] ?? '').split(','))
    if (o.trim() !== '') out.add(o.trim().replace(/\/+$/, ''));
  return out;
}

/** MCP over Streamable HTTP at /mcp, with OAuth 2.1 (metadata, registration, authorize, token). */
export async function registerMcpRoutes(ctx: ServerContext, app: FastifyInstance): Promise<ModuleHandle | undefined> {
  const oauth: OAuthModule = await registerOAuth(ctx, app);
  const origins = allowedOrigins(ctx);

  // The action catalogue with argument schemas, for the stdio bridge (and any REST client).
  ctx.routes.add({
    method: 'GET',
    url: '/api/v1/mcp/actions',
    summary:
      'Actions offered by the runners, with trust status, risk and the JSON Schema of their arguments (used by the MCP tools)',
    tag: 'mcp',
    auth: { permission: 'runners:read' },
    handler: async ({ principal }) => ({ actions: await listActionsFor(ctx, activeHub, principal!) }),
  });

  // One key for the multi-round-trip state of approval elicitations on this instance; several
  // instances behind a balancer share it through AIRLOCK_MCP_STATE_KEY (≥ 32 bytes).
  const configuredKey = process.env['AIRLOCK_MCP_STATE_KEY'];
  const stateKey =
    configuredKey !== undefined && Buffer.byteLength(configuredKey) >= 32
      ? new TextEncoder().encode(configuredKey)
      : randomBytes(32);
  const bus = new InMemoryServerEventBus((err) => ctx.log.warn({ err }, 'mcp event listener failed'));
  const handler = createMcpHandler(
    async ({ authInfo }) => {
      const principal = (authInfo?.extra as { principal?: Principal } | undefined)?.principal;
      if (principal === undefined) throw new Error('unauthenticated MCP request');
      const actionTools = (authInfo?.extra as { actionTools?: boolean } | undefined)?.actionTools === true;
      return createAirlockMcpServer(new ServerBackend(ctx, activeHub, async () => principal), {
        actionTools,
        stateKey,
      });
    },
    { bus, onerror: (err) => ctx.log.debug({ err }, 'mcp request error') },
  );
  // 2025-era clients get sessions so tool-list changes reach them too.
  const legacy = new LegacySessions((principal, actionTools) =>
    createAirlockMcpServer(new ServerBackend(ctx, activeHub, async () => principal()), { actionTools, stateKey }),
  );
  const node = toNodeHandler(handler, { onerror: (err) => ctx.log.debug({ err }, 'mcp request error') });

  /** Resolve the bearer token of a /mcp request: an API key or an OAuth access token for this resource. */
  const authenticate = async (req: FastifyRequest): Promise<{ principal: Principal; info: AuthInfo }> => {
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const token = m?.[1];
    if (token === undefined)
      throw ApiError.unauthorized(
        'this endpoint needs an API key or an OAuth access token (Authorization: Bearer <token>)',
      );
    if (token.startsWith('alk_')) {
      const principal = await apiKeyPrincipal(ctx.db, token);
      return {
        principal,
        info: { token, clientId: `api_key:${principal.keyId ?? ''}`, scopes: [...principal.permissions] },
      };
    }
    const r = await oauth.principalForAccessToken(token, req);
    return {
      principal: r.principal,
      info: { token, clientId: r.clientId, scopes: [...r.principal.permissions], expiresAt: r.expiresAt },
    };
  };

  const serve = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const origin = req.headers.origin;
    if (origin !== undefined && !origins.has(origin.replace(/\/+$/, ''))) {
      await reply
        .code(403)
        .send({ error: { code: 'forbidden', message: `Origin ${origin} is not allowed to call /mcp` } });
      return;
    }
    let auth: { principal: Principal; info: AuthInfo };
    try {
      auth = await authenticate(req);
    } catch (err) {
      const message = err instanceof ApiError ? err.message : 'invalid token';
      await reply
        .code(401)
        .header(
          'www-authenticate',
          `Bearer error="invalid_token", error_description="${message.replace(/[^\x20-\x7e]|"/g, "'")}", resource_metadata="${oauth.resourceMetadataUrl(req)}"`,
        )
        .send({ error: { code: 'unauthorized', message } });
      return;
    }
    const q = req.query as Record<string, string | undefined>;
    const info: AuthInfo = {
      ...auth.info,
      extra: { principal: auth.principal, actionTools: q['tools'] === 'actions' },
    };
    try {
      if (await legacy.handle(req, reply, auth.principal, info, q['tools'] === 'actions')) return;
    } catch (err) {
      ctx.log.error({ err }, 'mcp session failed');
      if (!reply.raw.headersSent) reply.raw.writeHead(500, { 'content-type': 'application/json' });
      reply.raw.end(JSON.stringify({ error: { code: 'internal', message: 'internal server error' } }));
      return;
    }
    reply.hijack();
    (req.raw as typeof req.raw & { auth?: AuthInfo }).auth = info;
    try {
      await node(req.raw as Parameters<typeof node>[0], reply.raw, req.body);
    } catch (err) {
      ctx.log.error({ err }, 'mcp handler failed');
      if (!reply.raw.headersSent) reply.raw.writeHead(500, { 'content-type': 'application/json' });
      reply.raw.end(JSON.stringify({ error: { code: 'internal', message: 'internal server error' } }));
    }
  };
  app.route({ method: ['GET', 'POST', 'DELETE'], url: '/mcp', handler: serve });

  // Tool-surface watcher: trust decisions, runners coming and going, packs changing.
  let last: string | undefined;
  let busy = false;
  const watch = setInterval(() => {
    // The baseline is kept while nobody listens, so a change made just before a client
    // subscribes is still announced (a spurious announcement is harmless; a missed one is not).
    if (busy || (bus.listenerCount === 0 && legacy.size === 0 && last !== undefined)) return;
    busy = true;
    void surfaceFingerprint(ctx)
      .then((fp) => {
        if (last !== undefined && fp !== last) {
          handler.notify.toolsChanged();
          legacy.notifyToolsChanged();
        }
        last = fp;
      })
      .catch((err) => ctx.log.warn({ err }, 'mcp surface watch failed'))
      .finally(() => {
        busy = false;
      });
  }, WATCH_MS);
  watch.unref();

  return {
    async close() {
      clearInterval(watch);
      await legacy.close();
      await handler.close();
      await oauth.close();
    },
  };
}

/** A digest of everything the tool lists depend on: pack trust, runner states and online flags. */
async function surfaceFingerprint(ctx: ServerContext): Promise<string> {
  const packs = await ctx.db.kysely.selectFrom('packs').select(['id', 'status']).orderBy('id').execute();
  const runners = await ctx.db.kysely.selectFrom('runners').select(['id', 'status', 'state']).orderBy('id').execute();
  const h = createHash('sha256');
  for (const p of packs) h.update(`p:${p.id}:${p.status}\n`);
  for (const r of runners)
    h.update(
      `r:${r.id}:${r.status}:${activeHub?.isOnline(r.id, r) === true}:${createHash('sha256')
        .update(r.state ?? '')
        .digest('hex')}\n`,
    );
  return h.digest('hex');
}
