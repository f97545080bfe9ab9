import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import type { ModuleHandle } from '../modules.js';

/** The dashboard: static assets of packages/web served at `/`. */
export async function registerWebRoutes(ctx: ServerContext, app: FastifyInstance): Promise<ModuleHandle | undefined> {
  void ctx;
  void app;
  return undefined;
}
