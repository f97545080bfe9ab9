import { AIRLOCK_VERSION } from '@airlock/core';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { type Db, pendingMigrations } from '../db/database.js';
import { EXPOSITION_CONTENT_TYPE } from './exposition.js';
import type { ServerMetrics } from './metrics.js';
import { type MetricsAccess, metricsAllowed } from './metrics-access.js';

/**
 * Hooks that must see every request: the request id echoed on every response (so a user
 * can quote it and the operator find the log line), and the HTTP latency histogram.
 * Installed before any route so each route gets them.
 */
export function installRequestHooks(app: FastifyInstance, metrics: ServerMetrics): void {
  // Callback hooks, not async ones: every request runs them, and a promise each is measurable.
  app.addHook('onSend', (req, reply, payload, done) => {
    if (!reply.hasHeader('x-request-id')) void reply.header('x-request-id', req.id);
    done(null, payload);
  });
  app.addHook('onResponse', (req, reply, done) => {
    // The route pattern, never the raw URL: ids in paths would make one series per run.
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.httpSeconds.observe(reply.elapsedTime / 1000, {
      method: req.method,
      route,
      code: `${String(reply.statusCode).charAt(0)}xx`,
    });
    done();
  });
}

/** Readiness: the database answers and every migration this build knows has run. */
export async function readiness(
  db: Db,
): Promise<{ ready: boolean; database: string; migrations: string; pending?: string[] }> {
  try {
    await sql`select 1`.execute(db.kysely);
  } catch (e) {
    return { ready: false, database: `unreachable: ${(e as Error).message}`, migrations: 'unknown' };
  }
  try {
    const pending = await pendingMigrations(db);
    return pending.length === 0
      ? { ready: true, database: 'ok', migrations: 'current' }
      : { ready: false, database: 'ok', migrations: 'pending', pending };
  } catch (e) {
    return { ready: false, database: 'ok', migrations: `unknown: ${(e as Error).message}` };
  }
}

/** `/healthz` (the process answers), `/readyz` (it can serve), `/metrics` (Prometheus text). */
export function registerObservabilityRoutes(
  app: FastifyInstance,
  db: Db,
  metrics: ServerMetrics,
  access: MetricsAccess,
): void {
  app.get('/healthz', async () => ({ status: 'ok', version: AIRLOCK_VERSION }));
  app.get('/readyz', async (_req, reply) => {
    const r = await readiness(db);
    void reply.code(r.ready ? 200 : 503);
    return { status: r.ready ? 'ready' : 'not_ready', version: AIRLOCK_VERSION, ...r };
  });
  app.get('/metrics', async (req, reply) => {
    const allowed = metricsAllowed(access, req.socket.remoteAddress, req.headers);
    if (!allowed.ok) {
      void reply.code(allowed.status);
      return { error: { code: allowed.status === 401 ? 'unauthorized' : 'forbidden', message: allowed.message } };
    }
    void reply.header('content-type', EXPOSITION_CONTENT_TYPE);
    return metrics.render();
  });
}
