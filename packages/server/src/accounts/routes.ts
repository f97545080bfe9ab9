import type { ServerContext } from '../context.js';
import type { ModuleHandle } from '../modules.js';

/** Accounts: login/logout/sessions, users, organisations, API keys. */
export async function registerAccountRoutes(ctx: ServerContext): Promise<ModuleHandle | undefined> {
  void ctx;
  return undefined;
}
