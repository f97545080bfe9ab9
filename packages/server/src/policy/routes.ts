import type { ServerContext } from '../context.js';
import type { ModuleHandle } from '../modules.js';

/** Policy: tier rules, overrides, grants, approvals, approver keys, explain. */
export async function registerPolicyRoutes(ctx: ServerContext): Promise<ModuleHandle | undefined> {
  void ctx;
  return undefined;
}
