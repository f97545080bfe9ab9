import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { useSha256 } from '@airlock/core';
import cookie from '@fastify/cookie';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { type BootstrapResult, bootstrapOwner } from './accounts/bootstrap.js';
import { createAuthenticator } from './auth/authenticate.js';
import { installSessions } from './auth/sessions.js';
import { DEFAULT_THROTTLE, installThrottles } from './auth/throttle.js';
import { openCluster } from './cluster/open-cluster.js';
import type { ServerConfig, ServerContext } from './context.js';
import { openDatabase } from './db/database.js';
import { ApiError } from './http/api-error.js';
import { DEFAULT_HTTP_LIMITS, fastifyLimitOptions, installJsonLimits } from './http/limits.js';
import { openApiDocument } from './http/openapi.js';
import { RouteRegistry } from './http/routes.js';
import { registerModules } from './modules.js';
import { ServerMetrics } from './observability/metrics.js';
import { ObservedAuditLog } from './observability/observed-audit-log.js';
import { requestIdFor } from './observability/request-id.js';
import { installRequestHooks, registerObservabilityRoutes } from './observability/routes.js';

/** A running (or ready-to-listen) control plane. */
// The audit chain hashes every event, mirrored runner events included: node's native SHA-256
// in place of core's portable one (the dashboard's browser keeps that).
useSha256((data) => createHash('sha256').update(data).digest('hex'));

export interface AirlockServer {
  readonly app: FastifyInstance;
  readonly ctx: ServerContext;
  readonly bootstrap: BootstrapResult;
  /** Start listening; resolves with the bound URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

/** Map an error to `{error: {code, message, fields?}}` and a status. */
function errorBody(err: unknown): { status: number; body: Record<string, unknown> } {
  if (err instanceof ApiError) {
    return {
      status: err.status,
      body: {
        error: { code: err.apiCode, message: err.message, ...(err.fields === undefined ? {} : { fields: err.fields }) },
      },
    };
  }
  const fe = err as FastifyError;
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    const code =
      fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? 'payload_too_large'
        : fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
          ? 'unsupported_media_type'
          : fe.statusCode === 404
            ? 'not_found'
            : 'bad_request';
    return { status: fe.statusCode, body: { error: { code, message: fe.message } } };
  }
  return {
    status: 500,
    body: { error: { code: 'internal', message: 'internal server error (see the server log for the request id)' } },
  };
}

/** Build a control plane: open the database, migrate, bootstrap the owner, register routes. */
export async function createServer(config: ServerConfig): Promise<AirlockServer> {
  const db = await openDatabase(config.database);
  const limits = { ...DEFAULT_HTTP_LIMITS, ...config.httpLimits };
  const app = Fastify({
    logger: { level: config.logLevel },
    ...fastifyLimitOptions(limits),
    // Adopted from x-request-id only when it looks like an id (see observability/request-id.ts).
    requestIdHeader: false,
    genReqId: requestIdFor,
    // Long path parameters reach the route schemas (and get a field-named 400) instead of
    // the router's bare 414.
    routerOptions: { maxParamLength: 2048 },
  });
  const metrics = new ServerMetrics(db);
  installRequestHooks(app, metrics);
  await app.register(cookie);
  await app.register(websocket, { options: { maxPayload: 1024 * 1024 } });
  installJsonLimits(app, limits);
  installThrottles(app, { ...DEFAULT_THROTTLE, ...config.throttle });
  app.setErrorHandler((err, req, reply) => {
    const { status, body } = errorBody(err);
    if (status >= 500) req.log.error({ err }, 'request failed');
    void reply.code(status).header('x-request-id', req.id).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply
      .code(404)
      .send({ error: { code: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` } });
  });

  const audit = new ObservedAuditLog(db, metrics);
  const routes = new RouteRegistry(app, createAuthenticator(db, installSessions(app, db, config)));
  const cluster = await openCluster(db, config.database, app.log);
  const ctx: ServerContext = { config, db, audit, log: app.log, routes, cluster };
  const bootstrap = await bootstrapOwner(db, audit, join(config.home, 'server', 'initial-admin-password'));
  const modules = await registerModules(ctx, app);

  registerObservabilityRoutes(app, db, metrics, { token: config.metricsToken });
  app.get('/api/v1/openapi.json', async () => openApiDocument(routes.routes));

  let closed = false;
  return {
    app,
    ctx,
    bootstrap,
    async listen() {
      const address = await app.listen({ host: config.host, port: config.port });
      return address;
    },
    async close() {
      if (closed) return;
      closed = true;
      await modules.close();
      await app.close();
      await cluster.close();
      await db.close();
    },
  };
}
