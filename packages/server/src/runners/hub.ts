import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  AIRLOCK_VERSION,
  encodeMessage,
  type HelloMessage,
  PROTOCOL_VERSION,
  parseMessage,
  type ResultMessage,
  type WireMessage,
} from '@airlock/core';
import type { WebSocket } from 'ws';
import { checkRunnerLogHead, mirrorRunnerEvent } from '../audit/runner-mirror.js';
import type { ServerContext } from '../context.js';
import type { RunnersTable, RunsTable } from '../db/schema.js';
import { recordAdvertisedPacks, storePackFiles } from '../packs/pack-store.js';
import { approvalForDispatch } from '../policy/approvals.js';
import { isFinal, runView } from '../runs/run-view.js';

/** Close codes the hub uses (4000–4999 are application codes). */
export const CLOSE = { policy: 1008, replaced: 4409, revoked: 4403, unauthorized: 4401, idle: 4408 } as const;

/** A frame budget: after this many bad frames in a minute, the connection is closed. */
const MAX_BAD_FRAMES = 10;

/** Events for live views (SSE, MCP progress): `run:<id>` with output lines and status changes. */
export type RunEvent =
  | {
      readonly type: 'output';
      readonly runId: string;
      readonly seq: number;
      readonly stream: string;
      readonly line: string;
      readonly partial: boolean;
    }
  | { readonly type: 'status'; readonly runId: string; readonly run: ReturnType<typeof runView> };

class RunnerSession {
  readonly sessionId = randomUUID();
  lastSeen = Date.now();
  helloDone = false;
  private badFrames: number[] = [];

  constructor(
    readonly runner: RunnersTable,
    readonly socket: WebSocket,
    private readonly hub: RunnerHub,
  ) {}

  send(msg: WireMessage): boolean {
    if (this.socket.readyState !== this.socket.OPEN) return false;
    this.socket.send(encodeMessage(msg));
    return true;
  }

  badFrame(code: string, message: string, requestId?: string): void {
    const now = Date.now();
    this.badFrames = this.badFrames.filter((t) => now - t < 60_000);
    this.badFrames.push(now);
    this.send({
      type: 'error',
      code,
      message: message.slice(0, 4000),
      ...(requestId === undefined ? {} : { request_id: requestId }),
    });
    if (this.badFrames.length >= MAX_BAD_FRAMES) this.socket.close(CLOSE.policy, 'too many invalid frames');
  }

  async onFrame(data: Buffer | string): Promise<void> {
    this.lastSeen = Date.now();
    const parsed = parseMessage(typeof data === 'string' ? data : new Uint8Array(data));
    if (!parsed.ok) {
      this.badFrame('invalid_message', parsed.error.message);
      return;
    }
    const msg = parsed.value;
    if (!this.helloDone && msg.type !== 'hello') {
      this.badFrame('invalid_message', `expected hello first, got ${msg.type}`);
      return;
    }
    await this.hub.handle(this, msg);
  }
}

/**
 * The runner hub: one WebSocket per connected runner (runners dial out; the server never
 * connects to them). It records advertised state, dispatches runs, stores streamed output,
 * finalises results exactly once and acknowledges them so the runner can drop its outbox.
 */
export class RunnerHub {
  private readonly sessions = new Map<string, RunnerSession>();
  readonly events = new EventEmitter();
  private readonly sweeper: NodeJS.Timeout;
  private readonly pendingFiles = new Map<string, string>(); // request id → pack id

  constructor(private readonly ctx: ServerContext) {
    this.events.setMaxListeners(0);
    const hb = ctx.config.heartbeatSeconds * 1000;
    this.sweeper = setInterval(() => {
      for (const s of this.sessions.values()) {
        if (Date.now() - s.lastSeen > 3 * hb) s.socket.terminate();
      }
    }, hb);
    this.sweeper.unref();
  }

  isOnline(runnerId: string): boolean {
    return this.sessions.get(runnerId)?.helloDone === true;
  }

  onlineIds(): string[] {
    return [...this.sessions.entries()].filter(([, s]) => s.helloDone).map(([id]) => id);
  }

  /** Take over a freshly authenticated socket. */
  attach(socket: WebSocket, runner: RunnersTable): void {
    const previous = this.sessions.get(runner.id);
    const session = new RunnerSession(runner, socket, this);
    this.sessions.set(runner.id, session);
    if (previous !== undefined) previous.socket.close(CLOSE.replaced, 'replaced by a newer connection');
    // Frames are handled one at a time per runner, in order.
    let chain = Promise.resolve();
    socket.on('message', (data: Buffer) => {
      chain = chain
        .then(() => session.onFrame(data))
        .catch((e: unknown) => {
          this.ctx.log.error({ err: e, runner: runner.id }, 'runner frame failed');
          session.badFrame('internal', 'the server could not process this frame');
        });
    });
    socket.on('close', () => {
      void chain.finally(async () => {
        if (this.sessions.get(runner.id) !== session) return;
        this.sessions.delete(runner.id);
        await this.ctx.db.kysely
          .updateTable('runners')
          .set({ status: 'offline', last_seen_at: new Date().toISOString() })
          .where('id', '=', runner.id)
          .where('status', '!=', 'revoked')
          .execute()
          .catch((e: unknown) => this.ctx.log.warn({ err: e }, 'could not mark runner offline'));
      });
    });
  }

  /** Close a runner's connection at once (revocation). */
  kick(runnerId: string, code: number, reason: string): void {
    this.sessions.get(runnerId)?.socket.close(code, reason);
  }

  /** Send a run to its runner if connected; marks it dispatched. */
  async dispatch(run: RunsTable): Promise<boolean> {
    const s = this.sessions.get(run.runner_id);
    if (s === undefined || !s.helloDone) return false;
    const principal = JSON.parse(run.requested_by) as { type: string; id: string; name?: string };
    // Approved runs carry who approved and, in signed tiers, the approver's signature.
    const approval = await approvalForDispatch(this.ctx.db, run);
    const ok = s.send({
      type: 'run_action',
      request_id: run.id,
      action: run.action,
      pack: run.pack_name,
      pack_hash: run.pack_hash,
      args: JSON.parse(run.args) as Record<string, unknown>,
      limits: JSON.parse(run.limits) as Record<string, number>,
      reason: run.reason,
      principal: {
        type: (['user', 'api_key', 'oauth_client', 'local'].includes(principal.type)
          ? principal.type
          : 'user') as 'user',
        id: principal.id,
        ...(principal.name === undefined ? {} : { name: principal.name }),
      },
      ...(approval === undefined ? {} : { approval }),
    });
    if (ok && run.status === 'queued') {
      await this.ctx.db.kysely
        .updateTable('runs')
        .set({ status: 'dispatched', dispatched_at: new Date().toISOString() })
        .where('id', '=', run.id)
        .where('status', '=', 'queued')
        .execute();
      await this.emitStatus(run.id);
    }
    return ok;
  }

  /** Ask the runner to cancel a run. */
  cancel(run: RunsTable, reason: string): boolean {
    return this.sessions.get(run.runner_id)?.send({ type: 'cancel', request_id: run.id, reason }) ?? false;
  }

  async handle(s: RunnerSession, msg: WireMessage): Promise<void> {
    switch (msg.type) {
      case 'hello':
        return this.onHello(s, msg);
      case 'accepted': {
        const run = await this.runFor(s, msg.request_id);
        if (run === undefined) return;
        await this.ctx.db.kysely
          .updateTable('runs')
          .set({ status: 'running', started_at: new Date().toISOString() })
          .where('id', '=', run.id)
          .where('status', 'in', ['queued', 'dispatched'])
          .execute();
        return this.emitStatus(run.id);
      }
      case 'output': {
        const run = await this.runFor(s, msg.request_id);
        if (run === undefined) return;
        await this.ctx.db.kysely
          .insertInto('run_output')
          .values({
            run_id: run.id,
            seq: msg.seq,
            stream: msg.stream,
            line: msg.line,
            partial: msg.partial === true ? 1 : 0,
          })
          .onConflict((oc) => oc.columns(['run_id', 'seq']).doNothing())
          .execute();
        this.events.emit(`run:${run.id}`, {
          type: 'output',
          runId: run.id,
          seq: msg.seq,
          stream: msg.stream,
          line: msg.line,
          partial: msg.partial === true,
        } satisfies RunEvent);
        return;
      }
      case 'result':
        return this.onResult(s, msg);
      case 'pack_files': {
        const packId = this.pendingFiles.get(msg.request_id);
        if (packId === undefined) return;
        this.pendingFiles.delete(msg.request_id);
        const pack = await this.ctx.db.kysely
          .selectFrom('packs')
          .selectAll()
          .where('id', '=', packId)
          .executeTakeFirst();
        if (pack !== undefined && pack.hash === msg.hash) await storePackFiles(this.ctx.db, pack, msg.files);
        return;
      }
      case 'ping':
        s.send({ type: 'pong', ts: msg.ts });
        return;
      case 'pong':
        return;
      case 'error':
        this.ctx.log.warn(
          { runner: s.runner.id, code: msg.code, request: msg.request_id },
          `runner reported: ${msg.message}`,
        );
        return;
      default:
        s.badFrame('invalid_message', `a runner may not send ${msg.type}`);
    }
  }

  private async runFor(s: RunnerSession, requestId: string): Promise<RunsTable | undefined> {
    const run = await this.ctx.db.kysely
      .selectFrom('runs')
      .selectAll()
      .where('id', '=', requestId)
      .where('runner_id', '=', s.runner.id)
      .executeTakeFirst();
    if (run === undefined) s.badFrame('unknown_request', `no run ${requestId} for this runner`, requestId);
    return run;
  }

  private async onHello(s: RunnerSession, msg: HelloMessage): Promise<void> {
    const { db } = this.ctx;
    const now = new Date().toISOString();
    const state = { packs: msg.packs, capabilities: msg.capabilities, labels: msg.labels ?? {} };
    await db.kysely
      .updateTable('runners')
      .set({ status: 'online', version: msg.version, state: JSON.stringify(state), last_seen_at: now })
      .where('id', '=', s.runner.id)
      .execute();
    const fresh = await recordAdvertisedPacks(db, this.ctx.audit, s.runner.org_id, s.runner.id, msg.packs);
    await checkRunnerLogHead(this.ctx, s.runner.org_id, s.runner.id, msg.log_head);
    const first = !s.helloDone;
    s.helloDone = true;
    if (first) {
      s.send({
        type: 'welcome',
        protocol: PROTOCOL_VERSION,
        runner_id: s.runner.id,
        session_id: s.sessionId,
        server_version: AIRLOCK_VERSION,
        heartbeat_s: this.ctx.config.heartbeatSeconds,
      });
      await this.ctx.audit.record({
        orgId: s.runner.org_id,
        kind: 'runner.connected',
        actor: { type: 'runner', id: s.runner.id, name: s.runner.name },
        runner: s.runner.id,
        data: { version: msg.version, packs: msg.packs.map((p) => `${p.name}@${p.hash}`), session: s.sessionId },
      });
    }
    // Fetch contents of newly seen pack versions for the trust review diff.
    for (const pack of fresh) {
      const files = pack.files === null ? [] : (JSON.parse(pack.files) as { path: string }[]);
      if (files.length === 0) continue;
      const requestId = `pf-${randomUUID()}`;
      this.pendingFiles.set(requestId, pack.id);
      s.send({
        type: 'pack_files_request',
        request_id: requestId,
        pack: pack.name,
        hash: pack.hash,
        paths: files.map((f) => f.path),
      });
    }
    // Runs waiting for this runner: queued, or dispatched before a disconnect and never accepted.
    const pending = await db.kysely
      .selectFrom('runs')
      .selectAll()
      .where('runner_id', '=', s.runner.id)
      .where('status', 'in', ['queued', 'dispatched', 'running'])
      .orderBy('created_at')
      .execute();
    for (const run of pending) {
      if (run.status === 'running' && run.cancel_requested !== 1) continue; // its result comes from the outbox
      if (run.cancel_requested === 1)
        s.send({ type: 'cancel', request_id: run.id, reason: 'cancelled while the runner was away' });
      else await this.dispatch(run);
    }
  }

  private async onResult(s: RunnerSession, msg: ResultMessage): Promise<void> {
    const run = await this.runFor(s, msg.request_id);
    if (run === undefined) return;
    if (!isFinal(run.status)) {
      const finishedAt = msg.finished_at ?? new Date().toISOString();
      // Guarded on "not final yet": a result re-sent after a reconnect changes nothing.
      const res = await this.ctx.db.kysely
        .updateTable('runs')
        .set({
          status: msg.status,
          exit_code: msg.exit_code,
          finished_at: finishedAt,
          started_at: run.started_at ?? msg.started_at ?? finishedAt,
          duration_ms: Math.round(msg.duration_ms),
          truncated: msg.truncated ? 1 : 0,
          output_bytes: msg.output_bytes,
          clamped: JSON.stringify(msg.clamped),
          audit_hash: msg.audit_hash,
          error_code: msg.error?.code ?? null,
          error_message: msg.error?.message ?? null,
        })
        .where('id', '=', run.id)
        .where('status', 'not in', ['success', 'failure', 'validation_failed', 'error', 'timeout', 'cancelled'])
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 1) {
        if (msg.audit_event !== undefined)
          await mirrorRunnerEvent(this.ctx, s.runner.org_id, s.runner.id, msg.audit_event);
        await this.ctx.audit.record({
          orgId: run.org_id,
          id: run.id,
          kind: 'run.result',
          actor: { type: 'runner', id: s.runner.id, name: s.runner.name },
          runner: s.runner.id,
          action: run.action,
          packHash: run.pack_hash,
          status: msg.status,
          exitCode: msg.exit_code,
          durationMs: Math.round(msg.duration_ms),
          error: msg.error ?? null,
          data: { runner_event: msg.audit_hash, truncated: msg.truncated, clamped: msg.clamped },
        });
        await this.emitStatus(run.id);
      }
    }
    s.send({ type: 'ack', request_id: run.id });
  }

  async emitStatus(runId: string): Promise<void> {
    const row = await this.ctx.db.kysely.selectFrom('runs').selectAll().where('id', '=', runId).executeTakeFirst();
    if (row !== undefined)
      this.events.emit(`run:${runId}`, { type: 'status', runId, run: runView(row) } satisfies RunEvent);
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    for (const s of this.sessions.values()) s.socket.close(1001, 'server shutting down');
    this.sessions.clear();
  }
}
