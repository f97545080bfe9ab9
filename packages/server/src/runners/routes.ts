import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import type { ModuleHandle } from '../modules.js';

/** Runners: create (bootstrap key), register (token), list, revoke, and the WebSocket hub. */
export async function registerRunnerModule(ctx: ServerContext, app: FastifyInstance): Promise<ModuleHandle | undefined> {
  void ctx;
  void app;
  return undefined;
}
