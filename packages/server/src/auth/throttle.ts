import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { FailureLimiter } from './rate-limit.js';

/** A budget: at most `limit` events per sliding `windowMs`; then refused until the oldest ages out. */
export interface Budget {
  readonly limit: number;
  readonly windowMs: number;
}

/**
 * Brute-force and flooding budgets of the credential endpoints, on top of the login route's
 * own per-(account, address) limit. Per account across all addresses stops a distributed
 * guess at one password; per address across all accounts stops one client spraying many
 * accounts. Both lift on their own once the window passes (no manual unlock needed, and an
 * attacker cannot lock an account for longer than the window). The per-account budget is
 * the loosest, because it also locks out the real user while it is spent.
 */
export interface ThrottleSettings {
  /** Failed logins per account (organisation + username), from any address. */
  readonly loginPerAccount: Budget;
  /** Failed logins per client address, for any account. */
  readonly loginPerAddress: Budget;
  /** Failed OAuth token requests (bad code, verifier, refresh token, client) per address. */
  readonly tokenPerAddress: Budget;
  /** Failed OAuth token requests per client_id, from any address. */
  readonly tokenPerClient: Budget;
  /** Failed runner bootstrap-key exchanges per address. */
  readonly runnerRegisterPerAddress: Budget;
  /** OAuth dynamic client registrations per address (successful ones: they add rows). */
  readonly clientRegistrationsPerAddress: Budget;
}

const MIN = 60 * 1000;
export const DEFAULT_THROTTLE: ThrottleSettings = Object.freeze({
  loginPerAccount: { limit: 100, windowMs: 15 * MIN },
  loginPerAddress: { limit: 50, windowMs: 15 * MIN },
  tokenPerAddress: { limit: 30, windowMs: 5 * MIN },
  tokenPerClient: { limit: 60, windowMs: 5 * MIN },
  runnerRegisterPerAddress: { limit: 20, windowMs: 15 * MIN },
  clientRegistrationsPerAddress: { limit: 20, windowMs: 60 * MIN },
});

type Kind = 'api' | 'oauth';

interface Rule {
  readonly kind: Kind;
  /** Limiter keys for this request (after body parsing). */
  keys(req: FastifyRequest): { limiter: FailureLimiter; key: string }[];
  /** Does this finished response count against the budget? */
  counts(status: number): boolean;
}

const str = (v: unknown): string => (typeof v === 'string' ? v.toLowerCase().slice(0, 256) : '');
const field = (req: FastifyRequest, name: string): unknown =>
  typeof req.body === 'object' && req.body !== null ? (req.body as Record<string, unknown>)[name] : undefined;

const rulesFor = new WeakMap<FastifyRequest, { limiter: FailureLimiter; key: string }[]>();

/**
 * Install the budgets as hooks: before the handler (the body is parsed by then) a spent budget
 * answers 429 with `retry-after`; after the response, a failure (or, for client registration,
 * a success) is counted. The maps are bounded and pruned every few minutes.
 */
export function installThrottles(app: FastifyInstance, settings: ThrottleSettings): void {
  const make = (b: Budget) => new FailureLimiter(b.limit, b.windowMs);
  const loginAccount = make(settings.loginPerAccount);
  const loginAddress = make(settings.loginPerAddress);
  const tokenAddress = make(settings.tokenPerAddress);
  const tokenClient = make(settings.tokenPerClient);
  const registerAddress = make(settings.runnerRegisterPerAddress);
  const clientRegs = make(settings.clientRegistrationsPerAddress);
  const all = [loginAccount, loginAddress, tokenAddress, tokenClient, registerAddress, clientRegs];

  const rules: Record<string, Rule> = {
    'POST /api/v1/auth/login': {
      kind: 'api',
      keys: (req) => [
        { limiter: loginAccount, key: `${str(field(req, 'org'))}\u0000${str(field(req, 'username'))}` },
        { limiter: loginAddress, key: req.ip },
      ],
      counts: (s) => s === 401,
    },
    'POST /oauth/token': {
      kind: 'oauth',
      keys: (req) => [
        { limiter: tokenAddress, key: req.ip },
        { limiter: tokenClient, key: str(field(req, 'client_id')) },
      ],
      counts: (s) => s === 400 || s === 401,
    },
    'POST /api/v1/runners/register': {
      kind: 'api',
      keys: (req) => [{ limiter: registerAddress, key: req.ip }],
      counts: (s) => s === 401,
    },
    'POST /oauth/register': {
      kind: 'oauth',
      keys: (req) => [{ limiter: clientRegs, key: req.ip }],
      counts: (s) => s === 201,
    },
  };

  const refuse = (reply: FastifyReply, kind: Kind, retryMs: number) => {
    const secs = Math.max(1, Math.ceil(retryMs / 1000));
    void reply.code(429).header('retry-after', String(secs)).header('cache-control', 'no-store');
    const message = `too many attempts; try again in ${secs} s`;
    return reply.send(
      kind === 'oauth'
        ? { error: 'invalid_request', error_description: message }
        : { error: { code: 'rate_limited', message } },
    );
  };

  // Hooks only on the routes that have a budget: every other request (a run, a poll) skips them.
  app.addHook('onRoute', (route) => {
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) {
      const rule = rules[`${method} ${route.url}`];
      if (rule === undefined) continue;
      const before = async (req: FastifyRequest, reply: FastifyReply) => {
        const keys = rule.keys(req);
        rulesFor.set(req, keys);
        const retry = Math.max(0, ...keys.map((k) => k.limiter.retryAfterMs(k.key)));
        if (retry > 0) return refuse(reply, rule.kind, retry);
      };
      const after = async (req: FastifyRequest, reply: FastifyReply) => {
        const keys = rulesFor.get(req);
        if (keys === undefined || reply.statusCode === 429) return;
        if (rule.counts(reply.statusCode)) for (const k of keys) k.limiter.fail(k.key);
      };
      // First in line, as a global hook would be: the budget is checked before anything else.
      route.preHandler = [before, ...asList(route.preHandler)] as NonNullable<typeof route.preHandler>;
      route.onResponse = [after, ...asList(route.onResponse)] as NonNullable<typeof route.onResponse>;
    }
  });
  const timer = setInterval(() => {
    for (const l of all) l.prune();
  }, 5 * MIN);
  timer.unref();
  app.addHook('onClose', async () => clearInterval(timer));
}

function asList<T>(hooks: T | readonly T[] | undefined): T[] {
  return hooks === undefined ? [] : Array.isArray(hooks) ? [...hooks] : [hooks as T];
}
