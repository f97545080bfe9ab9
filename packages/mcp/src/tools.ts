import { AIRLOCK_VERSION } from '@airlock/core';
import {
  type CallToolResult,
  fromJsonSchema,
  McpServer,
  type ServerContext,
  type ToolAnnotations,
} from '@modelcontextprotocol/server';
import { z } from 'zod';
import {
  approvalElicitation,
  approvalStateCodec,
  randomStateKey,
  resumedApproval,
  supportsUrlElicitation,
} from './approval-elicitation.js';
import {
  type ActionInfo,
  type AirlockBackend,
  BackendError,
  isFinalStatus,
  type OutputLine,
  type RunInfo,
} from './backend.js';
import { registerSandboxTools } from './sandbox-tools.js';

/** Options of one MCP server instance (one request, or one stdio connection). */
export interface AirlockMcpOptions {
  /** Also offer one tool per trusted action on an online runner (`runner__pack.action`). */
  readonly actionTools?: boolean;
  /** Upper bound of `wait_seconds` for run_action (default 600). */
  readonly maxWaitSeconds?: number;
  /** Max output lines returned in a tool result (default 500; the rest is in get_run). */
  readonly maxOutputLines?: number;
  /**
   * HMAC key (≥ 32 bytes) for the multi-round-trip state of approval elicitations; every
   * server instance that may see a retried call needs the same key. Default: random per process.
   */
  readonly stateKey?: Uint8Array;
}

const PROCESS_STATE_KEY = randomStateKey();

const DEFAULT_WAIT_S = 120;

/** Hints for an action of the given risk, as MCP tool annotations. */
export function riskAnnotations(risk: ActionInfo['risk'], title?: string): ToolAnnotations {
  return {
    ...(title === undefined ? {} : { title }),
    readOnlyHint: risk === 'read',
    destructiveHint: risk === 'destructive' || risk === 'unknown',
    idempotentHint: false,
    openWorldHint: true,
  };
}

/** A tool error the model can act on: which field, why. */
export function toolError(err: unknown): CallToolResult {
  if (err instanceof BackendError) {
    const fields = err.fields.map((f) => ({ field: f.field.replace(/^body\./, ''), message: f.message }));
    const text =
      fields.length > 0
        ? `${err.code}: ${fields.map((f) => `${f.field}: ${f.message}`).join('; ')}`
        : `${err.code}: ${err.message}`;
    return {
      isError: true,
      content: [{ type: 'text', text }],
      structuredContent: { error: { code: err.code, message: err.message, fields } },
    };
  }
  const message = err instanceof Error ? err.message : String(err);
  return {
    isError: true,
    content: [{ type: 'text', text: `error: ${message}` }],
    structuredContent: { error: { code: 'internal', message, fields: [] } },
  };
}

function json(value: Record<string, unknown>, text?: string): CallToolResult {
  return { content: [{ type: 'text', text: text ?? JSON.stringify(value, null, 2) }], structuredContent: value };
}

/** Turn the runner's validation message ("args.x: must …") into field errors. */
function validationFields(run: RunInfo): { field: string; message: string }[] {
  const msg = run.error?.message ?? '';
  const out: { field: string; message: string }[] = [];
  for (const part of msg.split(/;\s*|\n/)) {
    const m = /^\s*(?:args\.)?([A-Za-z_][\w.[\]]*):\s*(.+)$/.exec(part);
    if (m?.[1] !== undefined && m[2] !== undefined) out.push({ field: `args.${m[1]}`, message: m[2] });
  }
  return out.length > 0 ? out : [{ field: 'args', message: msg || 'arguments refused by the runner' }];
}

/** The tool result of a run: final, or still pending with where to look. */
async function runResult(backend: AirlockBackend, run: RunInfo, maxLines: number): Promise<CallToolResult> {
  const final = isFinalStatus(run.status);
  const { lines } = await backend.getOutput(run.id, -1, maxLines + 1);
  const shown = lines.slice(0, maxLines);
  const output = shown.map((l) => (l.stream === 'stderr' ? `[stderr] ${l.line}` : l.line)).join('\n');
  const url = backend.runUrl(run.id);
  const value: Record<string, unknown> = {
    run_id: run.id,
    status: run.status,
    final,
    exit_code: run.exit_code,
    duration_ms: run.duration_ms,
    output,
    output_lines: shown.length,
    output_more: lines.length > maxLines,
    truncated: run.truncated,
    audit_hash: run.audit_hash,
    error: run.error,
    url,
  };
  if (run.status === 'validation_failed') {
    const fields = validationFields(run);
    value['fields'] = fields;
    return {
      isError: true,
      content: [
        {
          type: 'text',
          text: `validation_failed: ${fields.map((f) => `${f.field}: ${f.message}`).join('; ')} (run ${run.id})`,
        },
      ],
      structuredContent: value,
    };
  }
  let summary: string;
  if (!final) {
    const pending = run.status.startsWith('pending');
    summary = pending
      ? `Run ${run.id} is ${run.status}: it needs a decision before it runs. Ask a person to review it at ${url}, then call get_run with run_id "${run.id}" to follow it.`
      : `Run ${run.id} is still ${run.status}. Call get_run with run_id "${run.id}" to follow it (or cancel_run to stop it).`;
    value['next'] = pending ? 'approval' : 'poll';
  } else {
    summary = `Run ${run.id}: ${run.status}${run.exit_code === null ? '' : ` (exit code ${run.exit_code})`}${run.truncated ? ', output truncated' : ''}${run.audit_hash === null ? '' : `, audit ${run.audit_hash}`}${run.error === null ? '' : `\n${run.error.code}: ${run.error.message}`}`;
  }
  return {
    content: [{ type: 'text', text: `${summary}\n\n${output === '' ? '(no output)' : output}` }],
    structuredContent: value,
    ...(final && run.status !== 'success' && run.status !== 'failure' ? { isError: run.status === 'error' } : {}),
  };
}

type Ctx = ServerContext;

/** Send a progress notification when the client asked for them. */
function progressSender(ctx: Ctx): (message: string) => void {
  const token = ctx.mcpReq._meta?.progressToken;
  let n = 0;
  return (message) => {
    if (token === undefined) return;
    n++;
    void ctx.mcpReq
      .notify({ method: 'notifications/progress', params: { progressToken: token, progress: n, message } })
      .catch(() => {});
  };
}

/** Start a run, follow it with progress notifications for a bounded time, return the result. */
async function runAndWait(
  backend: AirlockBackend,
  ctx: Ctx,
  req: {
    runner: string;
    action: string;
    args: Record<string, unknown>;
    limits: Record<string, number>;
    reason: string;
  },
  waitSeconds: number,
  maxLines: number,
): Promise<CallToolResult> {
  let run: RunInfo;
  try {
    run = await backend.createRun(req);
  } catch (err) {
    return toolError(err);
  }
  return followRun(backend, ctx, run, waitSeconds, maxLines);
}

/** Follow a run with progress notifications for a bounded time, then return its result. */
async function followRun(
  backend: AirlockBackend,
  ctx: Ctx,
  started: RunInfo,
  waitSeconds: number,
  maxLines: number,
): Promise<CallToolResult> {
  let run = started;
  const progress = progressSender(ctx);
  progress(`run ${run.id} ${run.status}`);
  if (isFinalStatus(run.status) || waitSeconds <= 0) return runResult(backend, run, maxLines);
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), waitSeconds * 1000);
  const onAbort = (): void => ac.abort();
  ctx.mcpReq.signal.addEventListener('abort', onAbort);
  let lastStatus = run.status;
  try {
    run = await backend.watchRun(
      run.id,
      {
        onOutput: (l: OutputLine) => progress(l.stream === 'stderr' ? `[stderr] ${l.line}` : l.line),
        onStatus: (r: RunInfo) => {
          if (r.status === lastStatus) return;
          lastStatus = r.status;
          progress(
            r.status.startsWith('pending')
              ? `run ${r.id} ${r.status}: waiting for a decision at ${backend.runUrl(r.id)}`
              : `run ${r.id} ${r.status}`,
          );
        },
      },
      ac.signal,
    );
  } catch (err) {
    return toolError(err);
  } finally {
    clearTimeout(timer);
    ctx.mcpReq.signal.removeEventListener('abort', onAbort);
  }
  return runResult(backend, run, maxLines);
}

/** JSON Schema for a tool's input, with a bounded object for `args`. */
const argsRecord = z.record(z.string(), z.unknown());

/**
 * Build the MCP server for one principal: the tools it may use right now. The same
 * definitions serve the stdio bridge and `/mcp` (both protocol eras).
 */
export async function createAirlockMcpServer(
  backend: AirlockBackend,
  opts: AirlockMcpOptions = {},
): Promise<McpServer> {
  const maxWait = opts.maxWaitSeconds ?? 600;
  const maxLines = opts.maxOutputLines ?? 500;
  const codec = approvalStateCodec(opts.stateKey ?? PROCESS_STATE_KEY);
  const server = new McpServer(
    { name: 'airlock', version: AIRLOCK_VERSION, title: 'airlock' },
    {
      capabilities: { tools: { listChanged: true } },
      requestState: { verify: (state, ctx) => codec.verify(state, ctx) },
      instructions:
        'airlock runs declared actions on real hosts under policy, approval and audit. Use list_actions to see what you may run (with argument schemas and risk), run_action to run one (say why in `reason`), get_run to follow a run, cancel_run to stop it. Runs that need approval come back pending with a URL for a person. Where sandbox hosts exist, sandbox_create / sandbox_exec / sandbox_read_file / sandbox_write_file / sandbox_destroy / sandbox_list run arbitrary code in microVMs under the same policy and audit.',
    },
  );
  const perms = await backend.permissions();
  const can = (p: string): boolean => perms.has(p);

  if (can('runners:read')) {
    server.registerTool(
      'list_runners',
      {
        title: 'List runners',
        description:
          'Hosts connected to airlock (runners): name, status, labels, and the action packs each one offers.',
        inputSchema: z.object({}),
        annotations: {
          title: 'List runners',
          readOnlyHint: true,
          destructiveHint: false,
          idempotentHint: true,
          openWorldHint: false,
        },
      },
      async () => {
        try {
          const runners = await backend.listRunners();
          return json({ runners });
        } catch (err) {
          return toolError(err);
        }
      },
    );

    server.registerTool(
      'list_actions',
      {
        title: 'List actions',
        description:
          'Actions you can run, per runner: id, title, risk (read | change | destructive), whether its pack is trusted, and the JSON Schema of its arguments. Pass `runner` to narrow to one host.',
        inputSchema: z.object({
          runner: z.string().max(128).optional().describe('runner name or id'),
          include_untrusted: z
            .boolean()
            .optional()
            .describe('also list actions of packs not yet trusted (they cannot run)'),
        }),
        annotations: {
          title: 'List actions',
          readOnlyHint: true,
          destructiveHint: false,
          idempotentHint: true,
          openWorldHint: false,
        },
      },
      async ({ runner, include_untrusted }) => {
        try {
          let actions = await backend.listActions();
          if (runner !== undefined) {
            actions = actions.filter((a) => a.runner === runner || a.runner_id === runner);
            if (
              actions.length === 0 &&
              !(await backend.listRunners()).some((r) => r.name === runner || r.id === runner)
            ) {
              return toolError(
                new BackendError('not_found', `runner ${runner} not found`, 404, [
                  { field: 'runner', message: `no runner named ${runner}` },
                ]),
              );
            }
          }
          if (include_untrusted !== true) actions = actions.filter((a) => a.trusted);
          return json({
            actions: actions.map((a) => ({ ...a, annotations: riskAnnotations(a.risk) })),
          });
        } catch (err) {
          return toolError(err);
        }
      },
    );
  }

  if (can('runs:write')) {
    server.registerTool(
      'run_action',
      {
        title: 'Run an action',
        description:
          'Run one declared action on a runner, with typed arguments (see list_actions for the schema) and a reason that is recorded in the audit trail. Streams output lines as progress notifications and returns status, exit code, redacted output, run id and audit event hash. A run that needs approval returns pending with a URL; the call waits at most wait_seconds.',
        inputSchema: z.object({
          runner: z.string().min(1).max(128).describe('runner name or id'),
          action: z.string().min(1).max(256).describe('action id, namespace.action'),
          args: argsRecord.optional().describe("the action's arguments (JSON Schema in list_actions)"),
          reason: z.string().min(1).max(2000).describe('why you run it (recorded in the audit trail)'),
          limits: z
            .record(z.string(), z.number())
            .optional()
            .describe('optional limits (timeout_s, output_bytes, …), clamped to the action bounds'),
          wait_seconds: z
            .number()
            .int()
            .min(0)
            .max(maxWait)
            .optional()
            .describe(`how long to wait for the result (default ${DEFAULT_WAIT_S})`),
        }),
        annotations: {
          title: 'Run an action',
          readOnlyHint: false,
          destructiveHint: true,
          idempotentHint: false,
          openWorldHint: true,
        },
      },
      async ({ runner, action, args, reason, limits, wait_seconds }, ctx) => {
        const wait = Math.min(wait_seconds ?? DEFAULT_WAIT_S, maxWait);
        // A retried call after the approval elicitation: follow that run, never start another.
        const resumed = resumedApproval(ctx);
        if (resumed !== undefined) {
          let run: RunInfo;
          try {
            run = await backend.getRun(resumed.run);
          } catch (err) {
            return toolError(err);
          }
          if (resumed.action !== 'accept') return runResult(backend, run, maxLines);
          return followRun(backend, ctx, run, wait, maxLines);
        }
        let run: RunInfo;
        try {
          run = await backend.createRun({ runner, action, args: args ?? {}, reason, limits: limits ?? {} });
        } catch (err) {
          return toolError(err);
        }
        if (run.status === 'pending_approval' && supportsUrlElicitation(ctx, server))
          return approvalElicitation(codec, ctx, run, backend.runUrl(run.id));
        return followRun(backend, ctx, run, wait, maxLines);
      },
    );

    server.registerTool(
      'cancel_run',
      {
        title: 'Cancel a run',
        description: 'Cancel a run that has not finished (a queued run at once, a running one by the runner).',
        inputSchema: z.object({
          run_id: z.string().min(1).max(128),
          reason: z.string().min(1).max(2000).optional(),
        }),
        annotations: {
          title: 'Cancel a run',
          readOnlyHint: false,
          destructiveHint: false,
          idempotentHint: true,
          openWorldHint: true,
        },
      },
      async ({ run_id, reason }) => {
        try {
          const run = await backend.cancelRun(run_id, reason ?? 'cancelled by the agent');
          return json(
            { run_id: run.id, status: run.status, cancel_requested: true },
            `Cancel requested for run ${run.id} (status ${run.status}).`,
          );
        } catch (err) {
          return toolError(err);
        }
      },
    );
  }

  if (can('runs:read')) {
    server.registerTool(
      'get_run',
      {
        title: 'Get a run',
        description:
          'Status, exit code, audit hash and redacted output of a run. With wait_seconds > 0, waits (bounded) for it to finish, streaming new output as progress notifications.',
        inputSchema: z.object({
          run_id: z.string().min(1).max(128),
          wait_seconds: z.number().int().min(0).max(maxWait).optional(),
        }),
        annotations: {
          title: 'Get a run',
          readOnlyHint: true,
          destructiveHint: false,
          idempotentHint: true,
          openWorldHint: false,
        },
      },
      async ({ run_id, wait_seconds }, ctx) => {
        try {
          let run = await backend.getRun(run_id);
          const wait = Math.min(wait_seconds ?? 0, maxWait);
          if (!isFinalStatus(run.status) && wait > 0) {
            const progress = progressSender(ctx);
            const ac = new AbortController();
            const timer = setTimeout(() => ac.abort(), wait * 1000);
            try {
              run = await backend.watchRun(
                run.id,
                { onOutput: (l) => progress(l.line), onStatus: (r) => progress(`run ${r.id} ${r.status}`) },
                ac.signal,
              );
            } finally {
              clearTimeout(timer);
            }
          }
          return await runResult(backend, run, maxLines);
        } catch (err) {
          return toolError(err);
        }
      },
    );
  }

  if (opts.actionTools === true && can('runs:write') && can('runners:read')) {
    const seen = new Set<string>();
    for (const a of await backend.listActions().catch(() => [] as ActionInfo[])) {
      if (!a.trusted || !a.runner_online) continue;
      const name = `${a.runner}__${a.id}`.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 128);
      if (seen.has(name)) continue;
      seen.add(name);
      const schema = { ...a.args_schema, type: 'object' } as Record<string, unknown>;
      server.registerTool(
        name,
        {
          title: `${a.title} (${a.runner})`,
          description: `${a.description} Runs ${a.id} on ${a.runner}; risk: ${a.risk}. Pass \`_reason\` to say why (recorded in the audit trail).`,
          inputSchema: fromJsonSchema<Record<string, unknown>>({
            ...schema,
            properties: {
              ...((schema['properties'] as Record<string, unknown> | undefined) ?? {}),
              _reason: { type: 'string', maxLength: 2000 },
            },
          } as never),
          annotations: riskAnnotations(a.risk, a.title),
        },
        async (input: Record<string, unknown>, ctx: Ctx) => {
          const { _reason, ...args } = input;
          const reason =
            typeof _reason === 'string' && _reason.trim() !== '' ? _reason : `requested through MCP tool ${name}`;
          return runAndWait(
            backend,
            ctx,
            { runner: a.runner, action: a.id, args, reason, limits: {} },
            DEFAULT_WAIT_S,
            maxLines,
          );
        },
      );
    }
  }
  // Sandbox tools only where the organisation has a sandbox host (like action tools need runners).
  if (backend.sandboxes !== undefined && (can('runs:read') || can('runs:write'))) {
    const available = await backend.sandboxes.available().catch(() => false);
    if (available) registerSandboxTools(server, backend.sandboxes, can, toolError, maxWait);
  }
  return server;
}
