import type { ServerContext } from '../context.js';
import type { ModuleHandle } from '../modules.js';

/** Audit: search, export (NDJSON, CEF), verification, signed checkpoints. */
export async function registerAuditRoutes(ctx: ServerContext): Promise<ModuleHandle | undefined> {
  void ctx;
  return undefined;
}
