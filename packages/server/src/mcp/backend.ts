import {
  type ActionInfo,
  type ActionRisk,
  type AirlockBackend,
  BackendError,
  isFinalStatus,
  type OutputLine,
  type RunInfo,
  type RunnerInfo,
  type RunRequest,
  type SandboxApi,
} from '@airlock/mcp';
import type { Permission } from '../auth/permissions.js';
import type { Principal } from '../auth/principal.js';
import type { ServerContext } from '../context.js';
import type { RunsTable } from '../db/schema.js';
import { ApiError } from '../http/api-error.js';
import { runnerVisibility } from '../policy/visibility.js';
import type { RunEvent, RunnerHub } from '../runners/hub.js';
import { parseState, runnerView } from '../runners/runner-store.js';
import { cancelRun, createRun } from '../runs/run-service.js';
import { runView } from '../runs/run-view.js';
import { sandboxApiFor } from '../sandboxes/mcp-api.js';
import { sandboxServiceFor } from '../sandboxes/routes.js';

/** One action's metadata as a runner advertises it in `hello` (`packs[].action_specs`). */
interface AdvertisedActionSpec {
  id: string;
  title?: string;
  description?: string;
  risk?: string;
  args_schema?: Record<string, unknown>;
}

const RISKS: readonly string[] = ['read', 'change', 'destructive'];

function toBackendError(err: unknown): never {
  if (err instanceof ApiError) throw new BackendError(err.apiCode, err.message, err.status, err.fields ?? []);
  throw err;
}

/**
 * The actions a principal's organisation offers: every action of every non-revoked runner,
 * with trust status, risk and argument JSON Schema (from the runner's `hello`).
 */
export async function listActionsFor(
  ctx: ServerContext,
  hub: RunnerHub | undefined,
  principal: Principal,
): Promise<ActionInfo[]> {
  const runners = await ctx.db.kysely
    .selectFrom('runners')
    .selectAll()
    .where('org_id', '=', principal.orgId)
    .where('status', '!=', 'revoked')
    .orderBy('name')
    .execute()
    .then(async (rows) => rows.filter(await runnerVisibility(ctx, principal)));
  const trusted = new Set(
    (
      await ctx.db.kysely
        .selectFrom('packs')
        .select(['name', 'hash'])
        .where('org_id', '=', principal.orgId)
        .where('status', '=', 'trusted')
        .execute()
    ).map((p) => `${p.name}\u0000${p.hash}`),
  );
  const out: ActionInfo[] = [];
  for (const r of runners) {
    const state = parseState(r);
    for (const p of state.packs as (ReturnType<typeof parseState>['packs'][number] & {
      action_specs?: AdvertisedActionSpec[];
      action_risks?: Record<string, string>;
    })[]) {
      const specs = new Map((p.action_specs ?? []).map((s) => [s.id, s]));
      for (const id of p.actions) {
        const s = specs.get(id);
        const riskText = s?.risk ?? p.action_risks?.[id];
        const risk: ActionRisk =
          riskText !== undefined && RISKS.includes(riskText) ? (riskText as ActionRisk) : 'unknown';
        out.push({
          runner: r.name,
          runner_id: r.id,
          runner_online: hub?.isOnline(r.id, r) ?? false,
          id,
          title: s?.title ?? id,
          description: s?.description ?? '',
          risk,
          pack: p.name,
          pack_version: p.version,
          pack_hash: p.hash,
          trusted: trusted.has(`${p.name}\u0000${p.hash}`),
          args_schema: s?.args_schema ?? { type: 'object' },
        });
      }
    }
  }
  return out;
}

/** The MCP backend inside the control plane: direct calls, as one principal, with the REST API's permissions. */
export class ServerBackend implements AirlockBackend {
  constructor(
    private readonly ctx: ServerContext,
    private readonly hub: RunnerHub | undefined,
    /** Re-resolves the principal (so a revoked token or demoted user stops at once). */
    private readonly principal: () => Promise<Principal>,
  ) {
    const svc = sandboxServiceFor(ctx);
    if (svc !== undefined) this.sandboxes = sandboxApiFor(svc, (p) => this.need(p));
  }

  /** Sandbox tools, when the sandbox module runs on this server. */
  readonly sandboxes?: SandboxApi;

  private async need(p: Permission): Promise<Principal> {
    const principal = await this.principal();
    if (!principal.permissions.has(p)) throw new BackendError('forbidden', `this needs the ${p} permission`, 403);
    return principal;
  }

  private requireHub(): RunnerHub {
    if (this.hub === undefined) throw new BackendError('unavailable', 'the runner hub is not running', 503);
    return this.hub;
  }

  private async load(orgId: string, id: string): Promise<RunsTable> {
    const row = await this.ctx.db.kysely
      .selectFrom('runs')
      .selectAll()
      .where('org_id', '=', orgId)
      .where('id', '=', id)
      .executeTakeFirst();
    if (row === undefined)
      throw new BackendError('not_found', `run ${id} not found`, 404, [
        { field: 'run_id', message: `no run ${id} in your organisation` },
      ]);
    return row;
  }

  async permissions(): Promise<ReadonlySet<string>> {
    return (await this.principal()).permissions;
  }

  async listRunners(): Promise<RunnerInfo[]> {
    const p = await this.need('runners:read');
    const rows = await this.ctx.db.kysely
      .selectFrom('runners')
      .selectAll()
      .where('org_id', '=', p.orgId)
      .orderBy('name')
      .execute();
    const visible = await runnerVisibility(this.ctx, p);
    return rows.filter(visible).map((r) => runnerView(r, this.hub?.isOnline(r.id, r) ?? false));
  }

  async listActions(): Promise<ActionInfo[]> {
    const p = await this.need('runners:read');
    return listActionsFor(this.ctx, this.hub, p);
  }

  async createRun(req: RunRequest): Promise<RunInfo> {
    const p = await this.need('runs:write');
    const hub = this.requireHub();
    if (!/^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$/.test(req.action)) {
      throw new BackendError('bad_request', 'action: expected namespace.action', 400, [
        { field: 'action', message: 'expected namespace.action, e.g. showcase.echo' },
      ]);
    }
    try {
      return runView(await createRun(this.ctx, hub, p, req));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && /runner/.test(err.message)) {
        throw new BackendError('not_found', err.message, 404, [
          { field: 'runner', message: `no runner ${req.runner} in your organisation` },
        ]);
      }
      return toBackendError(err);
    }
  }

  async getRun(id: string): Promise<RunInfo> {
    const p = await this.need('runs:read');
    return runView(await this.load(p.orgId, id));
  }

  async getOutput(id: string, after: number, limit: number): Promise<{ lines: OutputLine[] }> {
    const p = await this.need('runs:read');
    const run = await this.load(p.orgId, id);
    const lines = await this.ctx.db.kysely
      .selectFrom('run_output')
      .select(['seq', 'stream', 'line', 'partial'])
      .where('run_id', '=', run.id)
      .where('seq', '>', after)
      .orderBy('seq')
      .limit(Math.min(limit, 10_000))
      .execute();
    return { lines: lines.map((l) => ({ ...l, partial: l.partial === 1 })) };
  }

  async cancelRun(id: string, reason: string): Promise<RunInfo> {
    const p = await this.need('runs:write');
    const run = await this.load(p.orgId, id);
    try {
      await cancelRun(this.ctx, this.requireHub(), p, run, reason);
    } catch (err) {
      toBackendError(err);
    }
    return runView(await this.load(p.orgId, id));
  }

  runUrl(id: string): string {
    return `${this.ctx.config.publicUrl.replace(/\/+$/, '')}/runs/${encodeURIComponent(id)}`;
  }

  async watchRun(
    id: string,
    handlers: { onOutput(line: OutputLine): void; onStatus(run: RunInfo): void },
    signal: AbortSignal,
  ): Promise<RunInfo> {
    const p = await this.need('runs:read');
    const run = await this.load(p.orgId, id);
    const hub = this.hub;
    let lastSeq = -1;
    let lastStatus = '';
    return new Promise<RunInfo>((resolve, reject) => {
      let done = false;
      const finish = (r: RunInfo | undefined, err?: unknown): void => {
        if (done) return;
        done = true;
        hub?.events.off(`run:${id}`, onEvent);
        clearInterval(poll);
        signal.removeEventListener('abort', onAbort);
        if (err !== undefined) reject(err);
        else if (r !== undefined) resolve(r);
        else this.load(p.orgId, id).then((row) => resolve(runView(row)), reject);
      };
      const status = (r: RunInfo): void => {
        if (r.status !== lastStatus) {
          lastStatus = r.status;
          handlers.onStatus(r);
        }
        if (isFinalStatus(r.status)) finish(r);
      };
      const onEvent = (e: RunEvent): void => {
        if (e.type === 'output') {
          if (e.seq <= lastSeq) return;
          lastSeq = e.seq;
          handlers.onOutput({ seq: e.seq, stream: e.stream, line: e.line, partial: e.partial });
        } else status(e.run);
      };
      const onAbort = (): void => finish(undefined);
      // Catch-up: stored output and the current status (also covers runs on other instances).
      const catchUp = async (): Promise<void> => {
        const { lines } = await this.getOutput(id, lastSeq, 10_000);
        for (const l of lines) {
          if (l.seq <= lastSeq) continue;
          lastSeq = l.seq;
          handlers.onOutput(l);
        }
        status(runView(await this.load(p.orgId, id)));
      };
      hub?.events.on(`run:${id}`, onEvent);
      signal.addEventListener('abort', onAbort);
      const poll = setInterval(() => void catchUp().catch(() => {}), 2000);
      if (signal.aborted) return finish(undefined);
      void run;
      catchUp().catch((err) => finish(undefined, err));
    });
  }
}
