import type { CallToolResult, McpServer, ServerContext } from '@modelcontextprotocol/server';
import { z } from 'zod';
import type { SandboxApi, SandboxExecInfo, SandboxInfo } from './backend.js';

type ToolError = (err: unknown) => CallToolResult;

const idField = z.string().min(1).max(64).describe('sandbox id (sbx_…), from sandbox_create or sandbox_list');

function json(value: Record<string, unknown>, text: string): CallToolResult {
  return { content: [{ type: 'text', text }], structuredContent: value };
}

function describe(s: SandboxInfo): string {
  return `${s.id} (${s.language_pack}, ${s.state}, host ${s.host.name ?? s.host.id}, ${s.limits.memory_mb} MiB, expires ${s.expires_at})`;
}

function execText(r: SandboxExecInfo): string {
  const head = `exit code ${r.exit_code}${r.timed_out ? ' (timed out)' : ''}${r.truncated ? ', output truncated' : ''}, ${Math.round(r.duration_ms)} ms`;
  const parts = [head];
  if (r.stdout !== '') parts.push(`stdout:\n${r.stdout}`);
  if (r.stderr !== '') parts.push(`stderr:\n${r.stderr}`);
  if (r.redactions.length > 0) parts.push(`(redacted: ${r.redactions.join(', ')})`);
  return parts.join('\n\n');
}

/**
 * The sandbox tools: microVMs for arbitrary code under the same policy, quotas and audit as
 * actions. `sandbox_exec` streams output as progress notifications. Mutating tools need
 * `runs:write`, reading ones `runs:read`.
 */
export function registerSandboxTools(
  server: McpServer,
  api: SandboxApi,
  can: (permission: string) => boolean,
  toolError: ToolError,
  maxWaitSeconds: number,
): void {
  if (can('runs:write')) {
    server.registerTool(
      'sandbox_create',
      {
        title: 'Create a sandbox',
        description:
          "Boot a fresh microVM sandbox for running code (nothing shared with any host). Returns its id once it is ready. By default it has no network at all; with `egress` its code may make HTTP(S) requests (through the HTTP_PROXY set in every exec) to exactly the `host:port` pairs you list, if the organisation's policy allows them. Secrets in `egress.secrets` never enter the guest: the guest sees a placeholder in the environment variable NAME, and the host swaps the real value into request headers sent to the hosts the secret is bound to. Policy decides the packs, limits, lifetime and egress you may have; quotas limit how many you may keep. Destroy it with sandbox_destroy when done.",
        inputSchema: z.object({
          language_pack: z
            .string()
            .min(1)
            .max(32)
            .default('python')
            .describe('python, shell, node, … (python by default)'),
          memory_mb: z.number().int().min(64).max(4096).optional(),
          vcpus: z.number().int().min(1).max(4).optional(),
          lifetime_s: z
            .number()
            .int()
            .min(1)
            .max(7 * 24 * 3600)
            .optional()
            .describe('destroyed automatically after this'),
          env: z.record(z.string(), z.string()).optional().describe('environment of every exec'),
          egress: z
            .strictObject({
              allow: z
                .array(z.string().min(1).max(300))
                .min(1)
                .max(64)
                .describe(
                  '"host:port" pairs the code may reach: "api.example.com:443", "*.pypi.org:443", "[2001:db8::1]:443"',
                ),
              secrets: z
                .array(
                  z.strictObject({
                    name: z
                      .string()
                      .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/)
                      .describe('environment variable the guest sees a placeholder in'),
                    value: z
                      .string()
                      .min(1)
                      .max(8192)
                      .describe('the real value; swapped into request headers on the host, never given to the guest'),
                    hosts: z
                      .array(z.string().min(1).max(260))
                      .min(1)
                      .max(16)
                      .describe('hosts (each the host of an allow entry) the value is sent to'),
                  }),
                )
                .max(16)
                .optional(),
            })
            .optional()
            .describe(
              'network egress (off by default): an allowlist, and secrets that stay on the host. Events of every connection attempt are audited (secret names only).',
            ),
        }),
        annotations: {
          title: 'Create a sandbox',
          readOnlyHint: false,
          destructiveHint: false,
          idempotentHint: false,
          openWorldHint: false,
        },
      },
      async (input, ctx: ServerContext) => {
        // A boot can take a while (seconds with KVM, longer under TCG): a progress note every
        // few seconds lets clients that reset their timeout on progress keep waiting.
        const token = ctx.mcpReq._meta?.progressToken;
        const started = Date.now();
        let n = 0;
        const beat =
          token === undefined
            ? undefined
            : setInterval(() => {
                void ctx.mcpReq
                  .notify({
                    method: 'notifications/progress',
                    params: {
                      progressToken: token,
                      progress: ++n,
                      message: `booting a ${input.language_pack} sandbox… ${Math.round((Date.now() - started) / 1000)} s`,
                    },
                  })
                  .catch(() => {});
              }, 5000);
        try {
          const s = await api.create({
            language_pack: input.language_pack,
            ...(input.memory_mb === undefined ? {} : { memory_mb: input.memory_mb }),
            ...(input.vcpus === undefined ? {} : { vcpus: input.vcpus }),
            ...(input.lifetime_s === undefined ? {} : { lifetime_s: input.lifetime_s }),
            ...(input.env === undefined ? {} : { env: input.env }),
            ...(input.egress === undefined
              ? {}
              : {
                  egress: {
                    allow: input.egress.allow,
                    ...(input.egress.secrets === undefined ? {} : { secrets: input.egress.secrets }),
                  },
                }),
          });
          return json(
            { sandbox: s },
            `Sandbox ${describe(s)} is ready. Run code with sandbox_exec (sandbox_id "${s.id}").`,
          );
        } catch (err) {
          return toolError(err);
        } finally {
          clearInterval(beat);
        }
      },
    );

    server.registerTool(
      'sandbox_exec',
      {
        title: 'Run code in a sandbox',
        description:
          "Run code in a sandbox with its pack's interpreter (python3 -c, /bin/sh -c, node -e). Output streams as progress notifications; returns stdout, stderr (secrets redacted), exit code and the audit event hash. State (files, installed modules) persists between calls in the same sandbox.",
        inputSchema: z.object({
          sandbox_id: idField,
          code: z
            .string()
            .min(1)
            .max(256 * 1024),
          timeout_ms: z
            .number()
            .int()
            .min(1)
            .max(maxWaitSeconds * 1000)
            .optional()
            .describe('kill the code after this (default 30000)'),
          stdin: z
            .string()
            .max(256 * 1024)
            .optional(),
        }),
        annotations: {
          title: 'Run code in a sandbox',
          readOnlyHint: false,
          destructiveHint: false,
          idempotentHint: false,
          openWorldHint: false,
        },
      },
      async ({ sandbox_id, code, timeout_ms, stdin }, ctx: ServerContext) => {
        const token = ctx.mcpReq._meta?.progressToken;
        let n = 0;
        try {
          const r = await api.exec(
            sandbox_id,
            { code, ...(timeout_ms === undefined ? {} : { timeout_ms }), ...(stdin === undefined ? {} : { stdin }) },
            (stream, data) => {
              if (token === undefined) return;
              n++;
              void ctx.mcpReq
                .notify({
                  method: 'notifications/progress',
                  params: {
                    progressToken: token,
                    progress: n,
                    message: stream === 'stderr' ? `[stderr] ${data}` : data,
                  },
                })
                .catch(() => {});
            },
            ctx.mcpReq.signal,
          );
          return {
            content: [{ type: 'text', text: execText(r) }],
            structuredContent: { ...r, sandbox_id },
          };
        } catch (err) {
          return toolError(err);
        }
      },
    );

    server.registerTool(
      'sandbox_write_file',
      {
        title: 'Write a file into a sandbox',
        description: 'Write a UTF-8 text file (at most 512 KiB) into a sandbox; parent folders are created.',
        inputSchema: z.object({
          sandbox_id: idField,
          path: z.string().min(2).max(1024).describe('absolute path, e.g. /root/data.csv'),
          content: z.string().max(512 * 1024),
        }),
        annotations: {
          title: 'Write a file',
          readOnlyHint: false,
          destructiveHint: false,
          idempotentHint: true,
          openWorldHint: false,
        },
      },
      async ({ sandbox_id, path, content }) => {
        try {
          const r = await api.writeFile(sandbox_id, path, content);
          return json(r, `Wrote ${r.size} bytes to ${r.path} in ${sandbox_id}.`);
        } catch (err) {
          return toolError(err);
        }
      },
    );

    server.registerTool(
      'sandbox_destroy',
      {
        title: 'Destroy a sandbox',
        description: 'Destroy a sandbox and everything in it (idempotent).',
        inputSchema: z.object({ sandbox_id: idField }),
        annotations: {
          title: 'Destroy a sandbox',
          readOnlyHint: false,
          destructiveHint: true,
          idempotentHint: true,
          openWorldHint: false,
        },
      },
      async ({ sandbox_id }) => {
        try {
          const s = await api.destroy(sandbox_id);
          return json({ sandbox: s }, `Sandbox ${s.id} is ${s.state}.`);
        } catch (err) {
          return toolError(err);
        }
      },
    );
  }

  if (can('runs:read')) {
    server.registerTool(
      'sandbox_read_file',
      {
        title: 'Read a file from a sandbox',
        description:
          'Read a file (at most 512 KiB) from a sandbox: text when it is UTF-8 (secrets redacted), else base64.',
        inputSchema: z.object({ sandbox_id: idField, path: z.string().min(2).max(1024) }),
        annotations: {
          title: 'Read a file',
          readOnlyHint: true,
          destructiveHint: false,
          idempotentHint: true,
          openWorldHint: false,
        },
      },
      async ({ sandbox_id, path }) => {
        try {
          const r = await api.readFile(sandbox_id, path);
          return json(
            r,
            r.text === null
              ? `${r.path}: ${r.size} bytes of binary data (base64 in structuredContent.content_b64)`
              : r.text,
          );
        } catch (err) {
          return toolError(err);
        }
      },
    );

    server.registerTool(
      'sandbox_list',
      {
        title: 'List sandboxes',
        description:
          'Your sandboxes (admins see all of the organisation): id, state, pack, host, limits, expiry, usage.',
        inputSchema: z.object({}),
        annotations: {
          title: 'List sandboxes',
          readOnlyHint: true,
          destructiveHint: false,
          idempotentHint: true,
          openWorldHint: false,
        },
      },
      async () => {
        try {
          const list = await api.list();
          const live = list.filter((s) => s.state === 'running' || s.state === 'creating');
          return json(
            { sandboxes: list },
            list.length === 0
              ? 'No sandboxes.'
              : `${live.length} live of ${list.length}:\n${list.map(describe).join('\n')}`,
          );
        } catch (err) {
          return toolError(err);
        }
      },
    );
  }
}
