import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import type { Permission } from '../auth/permissions.js';
import type { Principal } from '../auth/principal.js';
import { ApiError, type FieldError } from './api-error.js';

/** How a route authenticates. `public` routes take no credentials. */
export type RouteAuth = { readonly permission: Permission } | 'authenticated' | 'public';

/** One API route: the schemas both validate requests and generate the OpenAPI document. */
export interface RouteSpec<
  B extends z.ZodType = z.ZodType,
  Q extends z.ZodType = z.ZodType,
  P extends z.ZodType = z.ZodType,
> {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly url: string;
  readonly summary: string;
  readonly tag: string;
  readonly auth: RouteAuth;
  readonly body?: B;
  readonly query?: Q;
  readonly params?: P;
  /** Documented response body (success). */
  readonly response?: z.ZodType;
  readonly status?: number;
  readonly handler: (ctx: {
    req: FastifyRequest;
    reply: FastifyReply;
    principal: Principal | undefined;
    body: z.infer<B>;
    query: z.infer<Q>;
    params: z.infer<P>;
  }) => Promise<unknown>;
}

/** Resolves the caller; installed by the auth module. */
export type Authenticator = (req: FastifyRequest, reply: FastifyReply) => Promise<Principal | undefined>;

/** Turn zod issues into field errors (`body.args.unit: expected string`). */
export function fieldErrors(where: string, error: z.ZodError): FieldError[] {
  return error.issues.flatMap((i) => {
    const base = [where, ...i.path.map(String)];
    // Name each unknown key as its own field, so a client sees exactly what to remove.
    if (i.code === 'unrecognized_keys') {
      return i.keys.map((k) => ({ field: [...base, k].join('.'), message: 'unknown field' }));
    }
    return [{ field: base.join('.'), message: i.message }];
  });
}

function parsePart<T extends z.ZodType>(schema: T | undefined, value: unknown, where: string): z.infer<T> {
  if (schema === undefined) return undefined as z.infer<T>;
  const r = schema.safeParse(value ?? (where === 'body' ? undefined : {}));
  if (!r.success) {
    const fields = fieldErrors(where, r.error);
    throw ApiError.badRequest(fields.map((f) => `${f.field}: ${f.message}`).join('; '), fields);
  }
  return r.data;
}

/** Registers routes on Fastify and remembers them for the OpenAPI document. */
export class RouteRegistry {
  readonly routes: RouteSpec[] = [];

  constructor(
    private readonly app: FastifyInstance,
    private readonly authenticate: Authenticator,
  ) {}

  add<B extends z.ZodType, Q extends z.ZodType, P extends z.ZodType>(spec: RouteSpec<B, Q, P>): void {
    this.routes.push(spec as unknown as RouteSpec);
    this.app.route({
      method: spec.method,
      url: spec.url,
      handler: async (req, reply) => {
        let principal: Principal | undefined;
        if (spec.auth !== 'public') {
          principal = await this.authenticate(req, reply);
          if (principal === undefined) throw ApiError.unauthorized();
          if (typeof spec.auth === 'object' && !principal.permissions.has(spec.auth.permission)) {
            throw ApiError.forbidden(`this needs the ${spec.auth.permission} permission`);
          }
        }
        const params = parsePart(spec.params, req.params, 'params');
        const query = parsePart(spec.query, req.query, 'query');
        const body = parsePart(spec.body, req.body, 'body');
        const out = await spec.handler({ req, reply, principal, body, query, params });
        if (reply.sent) return reply;
        if (spec.status !== undefined) reply.code(spec.status);
        if (out === undefined) return reply.code(spec.status ?? 204).send();
        return out;
      },
    });
  }
}
