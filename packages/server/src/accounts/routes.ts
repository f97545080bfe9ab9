import { FailureLimiter } from '../auth/rate-limit.js';
import { pruneSessions } from '../auth/sessions.js';
import type { ServerContext } from '../context.js';
import type { ModuleHandle } from '../modules.js';
import { registerKeyRoutes } from './key-routes.js';
import { registerOrgRoutes } from './org-routes.js';
import { registerSessionRoutes } from './session-routes.js';
import { registerUserRoutes } from './user-routes.js';

/** Failed logins allowed per username and client address in the window. */
export const LOGIN_FAILURE_LIMIT = 10;
export const LOGIN_FAILURE_WINDOW_MS = 5 * 60 * 1000;
const HOUSEKEEPING_MS = 10 * 60 * 1000;

/** Accounts: login/logout/sessions, users, organisations, API keys. */
export async function registerAccountRoutes(ctx: ServerContext): Promise<ModuleHandle | undefined> {
  const limiter = new FailureLimiter(LOGIN_FAILURE_LIMIT, LOGIN_FAILURE_WINDOW_MS);
  registerSessionRoutes(ctx, limiter);
  registerUserRoutes(ctx);
  registerOrgRoutes(ctx);
  registerKeyRoutes(ctx);
  const timer = setInterval(() => {
    limiter.prune();
    pruneSessions(ctx.db).catch((err: unknown) => ctx.log.warn({ err }, 'pruning expired sessions failed'));
  }, HOUSEKEEPING_MS);
  timer.unref();
  return {
    async close() {
      clearInterval(timer);
    },
  };
}
