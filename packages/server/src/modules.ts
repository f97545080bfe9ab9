import type { FastifyInstance } from 'fastify';
import type { ServerContext } from './context.js';

/** Something a module must stop on shutdown (timers, sockets). */
export interface ModuleHandle {
  close(): Promise<void>;
}

/** Register every feature module's routes. Each module owns its folder under src/. */
export async function registerModules(ctx: ServerContext, app: FastifyInstance): Promise<ModuleHandle> {
  const handles: ModuleHandle[] = [];
  void app;
  void ctx;
  return {
    async close() {
      for (const h of handles.reverse()) await h.close();
    },
  };
}
