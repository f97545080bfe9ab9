import type { FastifyInstance } from 'fastify';
import { registerAccountRoutes } from './accounts/routes.js';
import { registerAuditRoutes } from './audit/routes.js';
import type { ServerContext } from './context.js';
import { registerMcpRoutes } from './mcp/routes.js';
import { registerPolicyRoutes } from './policy/routes.js';
import { registerRunnerModule } from './runners/routes.js';
import { registerSandboxModule } from './sandboxes/routes.js';
import { registerWebRoutes } from './web/routes.js';

/** Something a module must stop on shutdown (timers, sockets). */
export interface ModuleHandle {
  close(): Promise<void>;
}

/** Register every feature module's routes. Each module owns its folder under src/. */
export async function registerModules(ctx: ServerContext, app: FastifyInstance): Promise<ModuleHandle> {
  const handles: ModuleHandle[] = [];
  for (const h of [
    await registerAccountRoutes(ctx),
    await registerAuditRoutes(ctx),
    await registerRunnerModule(ctx, app),
    await registerSandboxModule(ctx),
    await registerPolicyRoutes(ctx),
    await registerMcpRoutes(ctx, app),
    await registerWebRoutes(ctx, app),
  ]) {
    if (h !== undefined) handles.push(h);
  }
  return {
    async close() {
      for (const h of handles.reverse()) await h.close();
    },
  };
}
