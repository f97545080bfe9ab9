import {
  MAX_SANDBOX_CODE_BYTES,
  MAX_SANDBOX_FILE_BYTES,
  MAX_SANDBOX_OUTPUT_BYTES,
  parseEgressAllowEntry,
  sandboxEgressSchema,
} from '@airlock/core';
import { z } from 'zod';
import { principalRecord } from '../auth/principal.js';
import type { ServerContext } from '../context.js';
import type { Role } from '../db/schema.js';
import { ApiError } from '../http/api-error.js';
import type { ModuleHandle } from '../modules.js';
import { sandboxPolicySchema } from '../policy/sandbox-policy.js';
import { loadSandboxPolicy, saveSandboxPolicy } from '../policy/sandbox-policy-store.js';
import { activeHub } from '../runners/routes.js';
import { SandboxHostRegistry } from './host-registry.js';
import { SandboxService } from './sandbox-service.js';

const idParams = z.strictObject({ id: z.string().regex(/^sbx_[a-z0-9]{1,40}$/, 'expected a sandbox id (sbx_…)') });
const packName = z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, 'expected a language pack name such as python');
const envSchema = z
  .record(
    z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'expected an environment variable name'),
    z.string().max(8192),
  )
  .refine((e) => Object.keys(e).length <= 64, 'at most 64 variables');
const guestPath = z
  .string()
  .min(2)
  .max(1024)
  .regex(/^\/[^\0]*$/, 'expected an absolute path in the sandbox');

/** Request body of `POST /api/v1/sandboxes` (also used by the MCP tool). */
export const createBody = z.strictObject({
  language_pack: packName.default('python'),
  memory_mb: z.int().min(64).max(4096).optional(),
  vcpus: z.int().min(1).max(4).optional(),
  lifetime_s: z
    .int()
    .min(1)
    .max(7 * 24 * 3600)
    .optional(),
  env: envSchema.optional(),
  egress: sandboxEgressSchema
    .optional()
    .describe(
      'opt-in network egress: `allow` lists the "host:port" pairs the code may reach (policy must allow egress and each entry; a host must offer egress); `secrets` are swapped into request headers on the host for their bound hosts and never enter the guest. Secret values are write-only: no answer, audit event or log shows them.',
    ),
  labels: z.record(z.string().max(64), z.string().max(128)).optional().describe('only hosts with these labels'),
});

/** A sandbox as the API answers it (documentation of `sandboxView`, for the OpenAPI document). */
export const sandboxViewSchema = z.object({
  id: z.string(),
  state: z.enum(['creating', 'running', 'destroyed', 'failed', 'lost']),
  language_pack: z.string(),
  image_hash: z.string(),
  host: z.object({ id: z.string(), name: z.string().optional() }),
  owner_user_id: z.string(),
  created_by: z.object({ type: z.string(), id: z.string(), name: z.string().optional() }),
  limits: z.object({ memory_mb: z.int(), vcpus: z.int(), lifetime_s: z.int() }),
  created_at: z.string(),
  expires_at: z.string(),
  ended_at: z.string().nullable(),
  end_reason: z.string().nullable(),
  exec_count: z.int(),
  cpu_seconds: z.number(),
  egress: z
    .object({
      allow: z.array(z.string()),
      secrets: z.array(z.object({ name: z.string(), hosts: z.array(z.string()) })),
    })
    .nullable()
    .describe(
      'its egress: the allowlist, secret NAMES and bound hosts (never values); null: no network (or created before this field, see GET /sandboxes/:id/egress)',
    ),
});

/** Request body of `POST /api/v1/sandboxes/:id/exec`. */
export const execBody = z
  .strictObject({
    code: z.string().min(1).max(MAX_SANDBOX_CODE_BYTES).optional().describe("code run with the pack's interpreter"),
    argv: z.array(z.string().max(65536)).min(1).max(4096).optional().describe('a program and its arguments, no shell'),
    timeout_ms: z.int().min(1).max(3_600_000).optional(),
    stdin: z.string().max(MAX_SANDBOX_CODE_BYTES).optional(),
    env: envSchema.optional(),
    max_output_bytes: z.int().min(1).max(MAX_SANDBOX_OUTPUT_BYTES).optional(),
  })
  .refine((b) => (b.code === undefined) !== (b.argv === undefined), {
    message: 'give exactly one of code or argv',
    path: ['code'],
  });

const services = new WeakMap<ServerContext, SandboxService>();

/** The sandbox service of a server (for MCP), when the module is running. */
export function sandboxServiceFor(ctx: ServerContext): SandboxService | undefined {
  return services.get(ctx);
}

/**
 * Sandboxes under the control plane: the host registry on the runner hub, placement, the
 * REST API under /api/v1/sandboxes, and the sandbox policy under /api/v1/policy/sandboxes.
 */
export async function registerSandboxModule(ctx: ServerContext): Promise<ModuleHandle | undefined> {
  const hub = activeHub;
  if (hub === undefined) return undefined;
  let service: SandboxService | undefined;
  const registry = new SandboxHostRegistry(hub, {
    onAdvert: async (host, busy) => service?.reconcile(host, busy),
    onHostGone: async (runnerId) => service?.hostGone(runnerId),
    onEgress: async (runner, msg) => service?.recordEgress(runner, msg),
  });
  service = new SandboxService(ctx, registry);
  const svc = service;
  services.set(ctx, svc);
  hub.extend(registry);
  const { routes } = ctx;

  routes.add({
    method: 'POST',
    url: '/api/v1/sandboxes',
    summary: 'Create a sandbox on a host with capacity inside your scope (policy, quotas and image trust apply)',
    tag: 'sandboxes',
    auth: { permission: 'runs:write' },
    body: createBody,
    status: 201,
    response: sandboxViewSchema,
    handler: async ({ principal, body }) => svc.create(principal!, body),
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/sandboxes',
    summary: 'Sandboxes you may see (yours; admins see every sandbox of the organisation), newest first',
    tag: 'sandboxes',
    auth: { permission: 'runs:read' },
    query: z.strictObject({ state: z.enum(['creating', 'running', 'destroyed', 'failed', 'lost']).optional() }),
    response: z.object({ sandboxes: z.array(sandboxViewSchema) }),
    handler: async ({ principal, query }) => ({ sandboxes: await svc.list(principal!, query.state) }),
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/sandboxes/hosts',
    summary: 'Connected sandbox hosts: backend, isolation, images, capacity, labels',
    tag: 'sandboxes',
    auth: { permission: 'runs:read' },
    handler: async ({ principal }) => ({
      hosts: registry.hostsOf(principal!.orgId).map((h) => ({
        id: h.runner.id,
        name: h.runner.name,
        labels: JSON.parse(h.runner.labels) as Record<string, string>,
        backend: h.advert.backend,
        isolation: h.advert.isolation,
        kvm: h.advert.kvm,
        images: h.advert.images,
        capacity: h.advert.capacity,
        sandboxes: h.advert.sandboxes.length,
        egress: h.advert.egress === true,
      })),
    }),
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/sandboxes/:id',
    summary: 'One sandbox: state, host, limits, usage',
    tag: 'sandboxes',
    auth: { permission: 'runs:read' },
    params: idParams,
    response: sandboxViewSchema,
    handler: async ({ principal, params }) => svc.get(principal!, params.id),
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/sandboxes/:id/egress',
    summary:
      "A sandbox's egress: its allowlist, secret names and bound hosts (never values), and its connection attempts as audited (oldest first)",
    tag: 'sandboxes',
    auth: { permission: 'runs:read' },
    params: idParams,
    query: z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).default(1000) }),
    handler: async ({ principal, params, query }) => svc.egress(principal!, params.id, query.limit),
  });

  routes.add({
    method: 'POST',
    url: '/api/v1/sandboxes/:id/exec',
    summary: 'Run code in a sandbox; with ?stream=1 the answer is NDJSON (stdout/stderr chunks, then the result)',
    tag: 'sandboxes',
    auth: { permission: 'runs:write' },
    params: idParams,
    query: z.strictObject({ stream: z.enum(['0', '1']).default('0') }),
    body: execBody,
    handler: async ({ principal, params, query, body, reply, req }) => {
      if (query.stream !== '1') return svc.exec(principal!, params.id, body);
      // Validate access before the stream starts, so refusals keep their status code.
      await svc.get(principal!, params.id);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'application/x-ndjson',
        'cache-control': 'no-cache',
        'x-request-id': req.id,
      });
      const line = (v: unknown): void => void res.write(`${JSON.stringify(v)}\n`);
      try {
        const r = await svc.exec(principal!, params.id, body, (stream, data) => line({ type: stream, data }));
        line({ type: 'result', ...r });
      } catch (e) {
        const err =
          e instanceof ApiError
            ? { code: e.apiCode, message: e.message }
            : { code: 'internal', message: 'internal error' };
        if (!(e instanceof ApiError)) ctx.log.error({ err: e }, 'sandbox exec failed');
        line({ type: 'error', error: err });
      }
      res.end();
      return undefined;
    },
  });

  routes.add({
    method: 'PUT',
    url: '/api/v1/sandboxes/:id/files',
    summary: `Write a file into a sandbox (at most ${MAX_SANDBOX_FILE_BYTES} bytes; UTF-8 \`content\` or base64 \`content_b64\`)`,
    tag: 'sandboxes',
    auth: { permission: 'runs:write' },
    params: idParams,
    body: z
      .strictObject({
        path: guestPath,
        content: z.string().optional(),
        content_b64: z
          .string()
          .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64')
          .optional(),
        mode: z.int().min(0).max(0o7777).optional(),
      })
      .refine((b) => (b.content === undefined) !== (b.content_b64 === undefined), {
        message: 'give exactly one of content or content_b64',
        path: ['content'],
      }),
    handler: async ({ principal, params, body }) => {
      const b64 = body.content_b64 ?? Buffer.from(body.content ?? '', 'utf8').toString('base64');
      if (Buffer.from(b64, 'base64').length > MAX_SANDBOX_FILE_BYTES)
        throw new ApiError(413, 'payload_too_large', `body.content: at most ${MAX_SANDBOX_FILE_BYTES} bytes per file`, [
          { field: 'body.content', message: `at most ${MAX_SANDBOX_FILE_BYTES} bytes` },
        ]);
      return svc.writeFile(principal!, params.id, body.path, b64, body.mode);
    },
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/sandboxes/:id/files',
    summary: 'Read a file from a sandbox (base64, and as text when it is UTF-8; redacted on the host)',
    tag: 'sandboxes',
    auth: { permission: 'runs:read' },
    params: idParams,
    query: z.strictObject({
      path: guestPath,
      max_bytes: z.coerce.number().int().min(1).max(MAX_SANDBOX_FILE_BYTES).default(MAX_SANDBOX_FILE_BYTES),
    }),
    handler: async ({ principal, params, query }) => svc.readFile(principal!, params.id, query.path, query.max_bytes),
  });

  routes.add({
    method: 'DELETE',
    url: '/api/v1/sandboxes/:id',
    summary: 'Destroy a sandbox (idempotent)',
    tag: 'sandboxes',
    auth: { permission: 'runs:write' },
    params: idParams,
    response: sandboxViewSchema,
    handler: async ({ principal, params }) => svc.destroy(principal!, params.id),
  });

  // ---- policy
  routes.add({
    method: 'GET',
    url: '/api/v1/policy/sandboxes',
    summary: "The organisation's sandbox policy: who may create, packs, limits, egress, lifetimes, quotas",
    tag: 'policy',
    auth: { permission: 'runs:read' },
    handler: async ({ principal }) => loadSandboxPolicy(ctx.db, principal!.orgId),
  });

  routes.add({
    method: 'PUT',
    url: '/api/v1/policy/sandboxes',
    summary: "Replace the organisation's sandbox policy (audited with the before and after)",
    tag: 'policy',
    auth: { permission: 'users:write' },
    body: sandboxPolicySchema,
    handler: async ({ principal, body }) => {
      const p = principal!;
      const before = await loadSandboxPolicy(ctx.db, p.orgId);
      if (body.default_lifetime_s > body.max_lifetime_s)
        throw ApiError.badRequest('body.default_lifetime_s: must not exceed max_lifetime_s', [
          { field: 'body.default_lifetime_s', message: 'must not exceed max_lifetime_s' },
        ]);
      await saveSandboxPolicy(ctx.db, p.orgId, body, p.userId);
      await ctx.audit.record({
        orgId: p.orgId,
        kind: 'policy.sandboxes_changed',
        actor: principalRecord(p),
        data: { before, after: body },
      });
      return body;
    },
  });

  routes.add({
    method: 'GET',
    url: '/api/v1/policy/sandboxes/explain',
    summary:
      'What would happen if user U (optionally with key K) created a sandbox of pack P with these limits; creates nothing',
    tag: 'policy',
    auth: { permission: 'runs:read' },
    query: z.strictObject({
      user: z.string().min(1).max(128).optional().describe('user id or name (default: you)'),
      key: z.string().min(1).max(128).optional().describe('API key id of that user'),
      language_pack: packName.default('python'),
      memory_mb: z.coerce.number().int().min(64).max(4096).optional(),
      vcpus: z.coerce.number().int().min(1).max(4).optional(),
      lifetime_s: z.coerce.number().int().min(1).optional(),
      egress: z.enum(['true', 'false']).optional().describe('ask for egress (checks allow_egress and host support)'),
      egress_allow: z
        .string()
        .max(4096)
        .optional()
        .describe('comma-separated host:port entries the create would ask for (checked against egress_allow)')
        .superRefine((v, ctx) => {
          for (const e of (v ?? '').split(',').filter((x) => x.trim() !== '')) {
            const r = parseEgressAllowEntry(e);
            if (!r.ok) ctx.addIssue({ code: 'custom', message: `${e.trim()}: ${r.reason}` });
          }
        }),
    }),
    handler: async ({ principal, query }) => {
      const p = principal!;
      let subject = { orgId: p.orgId, userId: p.userId, username: p.username, role: p.role as Role };
      if (query.user !== undefined) {
        const u = await ctx.db.kysely
          .selectFrom('users')
          .select(['id', 'username', 'role'])
          .where('org_id', '=', p.orgId)
          .where((eb) => eb.or([eb('id', '=', query.user!), eb('username', '=', query.user!)]))
          .executeTakeFirst();
        if (u === undefined) throw ApiError.notFound(`user ${JSON.stringify(query.user)}`);
        if (u.id !== p.userId && !p.permissions.has('users:read'))
          throw ApiError.forbidden('explaining for another user needs the users:read permission');
        subject = { orgId: p.orgId, userId: u.id, username: u.username, role: u.role };
      }
      let keyId: string | undefined;
      if (query.key !== undefined) {
        const key = await ctx.db.kysely
          .selectFrom('api_keys')
          .select(['id', 'user_id'])
          .where('org_id', '=', p.orgId)
          .where('id', '=', query.key)
          .executeTakeFirst();
        if (key === undefined || key.user_id !== subject.userId) throw ApiError.notFound('API key of that user');
        keyId = key.id;
      }
      const ask = {
        language_pack: query.language_pack,
        memory_mb: query.memory_mb,
        vcpus: query.vcpus,
        lifetime_s: query.lifetime_s,
        egress:
          query.egress === 'true' || query.egress_allow !== undefined
            ? {
                allow: (query.egress_allow ?? '')
                  .split(',')
                  .map((x) => x.trim())
                  .filter((x) => x !== ''),
              }
            : undefined,
      };
      const { decision, usage } = await svc.decide(subject, ask);
      const placement =
        decision.kind === 'allow'
          ? await svc.placement(
              {
                orgId: subject.orgId,
                userId: subject.userId,
                kind: keyId === undefined ? 'user' : 'api_key',
                ...(keyId === undefined ? {} : { keyId }),
              },
              ask.language_pack,
              decision.limits.memory_mb,
              {},
              ask.egress !== undefined,
            )
          : undefined;
      return {
        decision: decision.kind,
        rule: decision.rule,
        ...(decision.kind === 'deny'
          ? { code: decision.code, message: decision.message }
          : { limits: decision.limits }),
        usage: {
          user_concurrent: usage.userConcurrent,
          org_concurrent: usage.orgConcurrent,
          user_cpu_seconds_today: Math.round(usage.userCpuMsToday / 1000),
          org_cpu_seconds_today: Math.round(usage.orgCpuMsToday / 1000),
        },
        ...(placement === undefined
          ? {}
          : { hosts: placement.candidates.map((c) => c.host.runner.name), skipped: placement.skipped }),
        trace: decision.trace,
      };
    },
  });

  return {
    async close() {
      registry.close();
    },
  };
}
