import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
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
import type { AuditTransaction } from '../audit/audit-log.js';
import { checkRunnerLogHead, mirrorRunnerEvent } from '../audit/runner-mirror.js';
import type { ClusterNote } from '../cluster/notes.js';
import type { ServerContext } from '../context.js';
import { finaliseRun, insertOutput, markRunning, runOfRunner } from '../db/hot-queries.js';
import type { RunnersTable, RunsTable } from '../db/schema.js';
import { recordAdvertisedPacks, storePackFiles } from '../packs/pack-store.js';
import { approvalForDispatch } from '../policy/approvals.js';
import { isFinal, runView } from '../runs/run-view.js';
import { killPoint } from './kill-point.js';

/** Close codes the hub uses (4000–4999 are application codes). */
export const CLOSE = { policy: 1008, replaced: 4409, revoked: 4403, unauthorized: 4401, idle: 4408 } as const;

/**
 * Error code a runner sends (with the request id, instead of `accepted`) when it refuses
 * new work because it could not record it: its security log's disk is full or unwritable.
 */
export const RUNNER_REFUSED = 'runner_log_unavailable';

/**
 * Frames sent to one runner in one turn of the event loop leave in one write: the socket is
 * corked at the first and uncorked when the turn ends. A batch of commits resolves many runs
 * at once (their dispatches, their acks); one syscall each cost more than the rest of a send.
 */
function corkForTurn(ws: WebSocket): void {
  const sock = (ws as unknown as { _socket?: Socket })._socket;
  if (sock === undefined || sock.writableCorked > 0) return;
  sock.cork();
  setImmediate(() => sock.uncork());
}

/** What every `run.result` event of a run says, whatever the outcome: the run, reported by its runner. */
function resultEvent(s: RunnerSession, run: RunsTable) {
  return {
    orgId: run.org_id,
    id: run.id,
    kind: 'run.result',
    actor: { type: 'runner', id: s.runner.id, name: s.runner.name },
    runner: s.runner.id,
    action: run.action,
    packHash: run.pack_hash,
  };
}

/** Frames about one run; a runner's frames about different runs are handled concurrently. */
const RUN_FRAMES = new Set(['accepted', 'output', 'result', 'error']);

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

/**
 * A module serving another capability over runner connections (sandbox hosts): it gets the
 * frames the hub does not handle itself and hears when a connection ends.
 */
export interface HubExtension {
  /** Handle one frame; false when the type is not this extension's. */
  onMessage(runner: RunnersTable, msg: WireMessage): Promise<boolean>;
  onClose(runnerId: string): Promise<void>;
}

class RunnerSession {
  readonly sessionId = randomUUID();
  lastSeen = Date.now();
  helloDone = false;
  private badFrames: number[] = [];
  /**
   * Ids of runs sent on this session and not finished yet: a run's `accepted` and `output`
   * frames need only to know that the run is this runner's, which sending it here proved
   * (a run's runner never changes). Others (after a reconnect, another instance's) are read.
   */
  private readonly sent = new Set<string>();

  markSent(runId: string): void {
    // A bound for a session whose runs never finish: beyond it, frames are checked by a read.
    if (this.sent.size >= 10_000) this.sent.clear();
    this.sent.add(runId);
  }

  wasSent(runId: string): boolean {
    return this.sent.has(runId);
  }

  forget(runId: string): void {
    this.sent.delete(runId);
  }

  constructor(
    readonly runner: RunnersTable,
    readonly socket: WebSocket,
    private readonly hub: RunnerHub,
  ) {}

  send(msg: WireMessage): boolean {
    if (this.socket.readyState !== this.socket.OPEN) return false;
    corkForTurn(this.socket);
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

  /** Parse a frame: the message, or the error to answer it with. */
  parse(data: Buffer | string): { msg: WireMessage } | { bad: string } {
    this.lastSeen = Date.now();
    const parsed = parseMessage(typeof data === 'string' ? data : new Uint8Array(data));
    return parsed.ok ? { msg: parsed.value } : { bad: parsed.error.message };
  }

  async onMessage(msg: WireMessage): Promise<void> {
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
    ctx.cluster.onNote((note) => {
      this.onNote(note).catch((e: unknown) => ctx.log.warn({ err: e, note: note.t }, 'cluster note failed'));
    });
    ctx.cluster.onResync(() => {
      for (const s of this.sessions.values()) {
        if (s.helloDone)
          void this.sendPending(s).catch((e: unknown) => ctx.log.warn({ err: e }, 'cluster resync failed'));
      }
    });
  }

  /**
   * Whether a runner is connected. Its session may live on another instance: with a shared
   * database, pass the runner row and its stored status answers for the others.
   */
  isOnline(runnerId: string, row?: Pick<RunnersTable, 'status'>): boolean {
    if (this.sessions.get(runnerId)?.helloDone === true) return true;
    return this.ctx.cluster.shared && row?.status === 'online';
  }

  private readonly extensions: HubExtension[] = [];

  /** Add a capability module (sandboxes). */
  extend(ext: HubExtension): void {
    this.extensions.push(ext);
  }

  /** Send a frame to a runner connected to this instance; false when it is not. */
  sendTo(runnerId: string, msg: WireMessage): boolean {
    const s = this.sessions.get(runnerId);
    return s?.helloDone === true && s.send(msg);
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
    // Frames about one run (accepted, output, result, a refusal) are handled in order, one at
    // a time; frames about different runs are handled concurrently, so their database writes
    // share group commits instead of queueing behind each other. Any other frame (hello, ping,
    // pack files, capability frames) waits for everything received before it, and everything
    // after it waits for it.
    let barrier: Promise<void> = Promise.resolve();
    const tails = new Map<string, Promise<void>>();
    const inflight = new Set<Promise<void>>();
    const failed = (e: unknown): void => {
      this.ctx.log.error({ err: e, runner: runner.id }, 'runner frame failed');
      session.badFrame('internal', 'the server could not process this frame');
      // Most likely the database is unreachable. A result not stored is not acked and the
      // runner re-sends its outbox only after a reconnect: close, so it reconnects and retries.
      session.socket.close(1011, 'server error; reconnect and re-send');
    };
    socket.on('message', (data: Buffer) => {
      const parsed = session.parse(data);
      const msg = 'msg' in parsed ? parsed.msg : undefined;
      // A bad frame is answered in its place in the stream, like any session frame.
      const handle = (): Promise<void> | void =>
        msg === undefined
          ? session.badFrame('invalid_message', (parsed as { bad: string }).bad)
          : session.onMessage(msg);
      const rid =
        msg !== undefined && RUN_FRAMES.has(msg.type) ? (msg as { request_id?: string }).request_id : undefined;
      let p: Promise<void>;
      if (rid !== undefined) {
        p = (tails.get(rid) ?? barrier).then(handle).catch(failed);
        tails.set(rid, p);
      } else {
        p = Promise.all([barrier, ...tails.values()])
          .then(handle)
          .catch(failed);
        barrier = p;
      }
      inflight.add(p);
      void p.finally(() => {
        inflight.delete(p);
        if (rid !== undefined && tails.get(rid) === p) tails.delete(rid);
      });
    });
    socket.on('close', () => {
      void Promise.allSettled([...inflight]).finally(async () => {
        if (this.sessions.get(runner.id) !== session) return;
        this.sessions.delete(runner.id);
        for (const x of this.extensions)
          await x.onClose(runner.id).catch((e: unknown) => this.ctx.log.warn({ err: e }, 'hub extension close failed'));
        await this.ctx.db.kysely
          .updateTable('runners')
          .set({ status: 'offline', last_seen_at: new Date().toISOString(), session_id: null, instance_id: null })
          .where('id', '=', runner.id)
          .where('status', '!=', 'revoked')
          // The runner may already be back on another instance: only this session's mark is undone.
          .where((eb) => eb.or([eb('session_id', '=', session.sessionId), eb('session_id', 'is', null)]))
          .execute()
          .catch((e: unknown) => this.ctx.log.warn({ err: e }, 'could not mark runner offline'));
        if (session.helloDone) await this.rerouteDispatched(runner.id);
      });
    });
  }

  /** Close a runner's connection at once (revocation), on whichever instance holds it. */
  kick(runnerId: string, code: number, reason: string): void {
    this.sessions.get(runnerId)?.socket.close(code, reason);
    void this.publish({ t: 'kick', r: runnerId, c: code });
  }

  /**
   * Send a run to its runner; marks it dispatched. When the runner's session is on another
   * instance, a note routes it there and this returns false (the run stays queued until that
   * instance sends it, or the runner's next hello picks it up).
   */
  async dispatch(run: RunsTable): Promise<boolean> {
    const s = this.sessions.get(run.runner_id);
    if (s === undefined || !s.helloDone) {
      await this.publish({ t: 'dispatch', r: run.runner_id, id: run.id });
      return false;
    }
    return this.dispatchOn(s, run);
  }

  /**
   * Whether a run for this runner can be sent from this instance right now. A run created
   * for such a runner is stored `dispatched` in the transaction that creates it, and sent with
   * {@link sendFresh} after the commit, which saves a status update and its commit per run.
   */
  isLocal(runnerId: string): boolean {
    return this.sessions.get(runnerId)?.helloDone === true;
  }

  /**
   * Send a run just stored as `dispatched` (see {@link isLocal}); it has no approval. If the
   * session went away meanwhile it is routed like {@link dispatch}: a `dispatched` run that
   * was never accepted is sent again on the runner's next hello, wherever it lands.
   */
  async sendFresh(run: RunsTable): Promise<void> {
    const s = this.sessions.get(run.runner_id);
    if (s?.helloDone === true && s.send(this.runAction(run, undefined))) {
      s.markSent(run.id);
      return;
    }
    await this.publish({ t: 'dispatch', r: run.runner_id, id: run.id });
  }

  private async dispatchOn(s: RunnerSession, run: RunsTable): Promise<boolean> {
    // Approved runs carry who approved and, in signed tiers, the approver's signature.
    const approval = await approvalForDispatch(this.ctx.db, run);
    const ok = s.send(this.runAction(run, approval));
    if (ok) s.markSent(run.id);
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

  private runAction(run: RunsTable, approval: Awaited<ReturnType<typeof approvalForDispatch>>): WireMessage {
    const principal = JSON.parse(run.requested_by) as { type: string; id: string; name?: string };
    return {
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
    };
  }

  /** Ask the runner to cancel a run, on whichever instance holds its session. */
  cancel(run: RunsTable, reason: string): boolean {
    const sent = this.sessions.get(run.runner_id)?.send({ type: 'cancel', request_id: run.id, reason }) ?? false;
    if (!sent) void this.publish({ t: 'cancel', r: run.runner_id, id: run.id });
    return sent;
  }

  /** A note from another instance (or this one, on the bus). */
  private async onNote(n: ClusterNote): Promise<void> {
    const mine = n.i === this.ctx.cluster.instanceId;
    switch (n.t) {
      case 'dispatch': {
        const s = this.sessions.get(n.r);
        if (s === undefined || !s.helloDone) return;
        const run = await this.ctx.db.kysely.selectFrom('runs').selectAll().where('id', '=', n.id).executeTakeFirst();
        if (run === undefined || run.runner_id !== n.r) return;
        if (run.status !== 'queued' && run.status !== 'dispatched') return;
        if (run.cancel_requested === 1)
          s.send({ type: 'cancel', request_id: run.id, reason: 'cancelled before it reached the runner' });
        else await this.dispatchOn(s, run);
        return;
      }
      case 'cancel':
        if (!mine) this.sessions.get(n.r)?.send({ type: 'cancel', request_id: n.id, reason: 'cancelled by request' });
        return;
      case 'kick':
        if (!mine) this.sessions.get(n.r)?.socket.close(n.c, 'closed by the control plane');
        return;
      case 'session': {
        const s = this.sessions.get(n.r);
        if (!mine && s !== undefined && s.sessionId !== n.s)
          s.socket.close(CLOSE.replaced, 'replaced by a newer connection on another instance');
        return;
      }
      case 'output': {
        if (mine || this.events.listenerCount(`run:${n.id}`) === 0) return;
        const l = await this.ctx.db.kysely
          .selectFrom('run_output')
          .selectAll()
          .where('run_id', '=', n.id)
          .where('seq', '=', n.q)
          .executeTakeFirst();
        if (l !== undefined)
          this.events.emit(`run:${n.id}`, {
            type: 'output',
            runId: n.id,
            seq: l.seq,
            stream: l.stream,
            line: l.line,
            partial: l.partial === 1,
          } satisfies RunEvent);
        return;
      }
      case 'status':
        if (!mine && this.events.listenerCount(`run:${n.id}`) > 0) await this.emitStatusHere(n.id);
        return;
    }
  }

  private async publish(note: Parameters<ServerContext['cluster']['publish']>[0]): Promise<void> {
    await this.ctx.cluster
      .publish(note)
      .catch((e: unknown) => this.ctx.log.warn({ err: e, note: note.t }, 'cluster: could not publish a note'));
  }

  /**
   * A session closed: runs sent on it but never accepted may be lost in its socket. If the
   * runner is already back on another instance, a note has that instance send them again
   * (the runner's outbox and dedup ring make a duplicate harmless).
   */
  private async rerouteDispatched(runnerId: string): Promise<void> {
    const rows = await this.ctx.db.kysely
      .selectFrom('runs')
      .select('id')
      .where('runner_id', '=', runnerId)
      .where('status', '=', 'dispatched')
      .execute()
      .catch(() => []);
    for (const r of rows) await this.publish({ t: 'dispatch', r: runnerId, id: r.id });
  }

  async handle(s: RunnerSession, msg: WireMessage): Promise<void> {
    switch (msg.type) {
      case 'hello':
        return this.onHello(s, msg);
      case 'accepted': {
        const run = await this.runOfSession(s, msg.request_id);
        if (run === undefined) return;
        await markRunning.execute(this.ctx.db.kysely, { id: run.id, started_at: new Date().toISOString() });
        return this.emitStatus(run.id);
      }
      case 'output': {
        const run = await this.runOfSession(s, msg.request_id);
        if (run === undefined) return;
        await insertOutput.execute(this.ctx.db.kysely, {
          run_id: run.id,
          seq: msg.seq,
          stream: msg.stream,
          line: msg.line,
          partial: msg.partial === true ? 1 : 0,
        });
        this.events.emit(`run:${run.id}`, {
          type: 'output',
          runId: run.id,
          seq: msg.seq,
          stream: msg.stream,
          line: msg.line,
          partial: msg.partial === true,
        } satisfies RunEvent);
        // Only other instances need the note (this one emitted above).
        if (this.ctx.cluster.shared) await this.publish({ t: 'output', id: run.id, q: msg.seq });
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
        if (msg.code === RUNNER_REFUSED && msg.request_id !== undefined)
          await this.onRefused(s, msg.request_id, msg.message);
        return;
      default:
        for (const x of this.extensions) if (await x.onMessage(s.runner, msg)) return;
        s.badFrame('invalid_message', `a runner may not send ${msg.type}`);
    }
  }

  /**
   * The runner refused a request because it cannot record it (its security log is not
   * writable, e.g. the disk is full). Before `accepted` nothing ran; the run ends `error`
   * with the runner's message, recorded in the server's audit log.
   */
  private async onRefused(s: RunnerSession, requestId: string, message: string): Promise<void> {
    s.forget(requestId);
    const run = await this.runFor(s, requestId);
    if (run === undefined) return;
    const res = await this.ctx.db.kysely
      .updateTable('runs')
      .set({
        status: 'error',
        finished_at: new Date().toISOString(),
        error_code: RUNNER_REFUSED,
        error_message: message.slice(0, 4000),
      })
      .where('id', '=', run.id)
      // `running`: the attempt ran but the runner could not log it (the disk filled meanwhile).
      .where('status', 'in', ['queued', 'dispatched', 'running'])
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1) return;
    await this.ctx.audit.record({
      ...resultEvent(s, run),
      status: 'error',
      error: { code: RUNNER_REFUSED, message: message.slice(0, 4000) },
      data: { refused_before_accept: run.status !== 'running' },
    });
    await this.emitStatus(run.id);
  }

  /** A run this runner may report on: sent on this session, else read (see RunnerSession.sent). */
  private async runOfSession(s: RunnerSession, requestId: string): Promise<{ id: string } | undefined> {
    return s.wasSent(requestId) ? { id: requestId } : this.runFor(s, requestId);
  }

  private async runFor(s: RunnerSession, requestId: string): Promise<RunsTable | undefined> {
    const run = await runOfRunner.first(this.ctx.db.kysely, { id: requestId, runner_id: s.runner.id });
    if (run === undefined) s.badFrame('unknown_request', `no run ${requestId} for this runner`, requestId);
    return run;
  }

  private async onHello(s: RunnerSession, msg: HelloMessage): Promise<void> {
    const { db } = this.ctx;
    const now = new Date().toISOString();
    const state = { packs: msg.packs, capabilities: msg.capabilities, labels: msg.labels ?? {} };
    await db.kysely
      .updateTable('runners')
      .set({
        status: 'online',
        version: msg.version,
        state: JSON.stringify(state),
        last_seen_at: now,
        session_id: s.sessionId,
        instance_id: this.ctx.cluster.instanceId,
      })
      .where('id', '=', s.runner.id)
      .execute();
    const fresh = await recordAdvertisedPacks(db, this.ctx.audit, s.runner.org_id, s.runner.id, msg.packs);
    await checkRunnerLogHead(this.ctx, s.runner.org_id, s.runner.id, msg.log_head);
    const first = !s.helloDone;
    s.helloDone = true;
    if (first) {
      await this.publish({ t: 'session', r: s.runner.id, s: s.sessionId });
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
    await this.sendPending(s);
  }

  /** Runs waiting for this runner: queued, or dispatched before a disconnect and never accepted. */
  private async sendPending(s: RunnerSession): Promise<void> {
    const pending = await this.ctx.db.kysely
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
      else await this.dispatchOn(s, run);
    }
  }

  private async onResult(s: RunnerSession, msg: ResultMessage): Promise<void> {
    s.forget(msg.request_id);
    const run = await this.runFor(s, msg.request_id);
    if (run === undefined) return;
    let recorded = false;
    if (!isFinal(run.status)) {
      const finishedAt = msg.finished_at ?? new Date().toISOString();
      // Finalising the run, mirroring the runner's event and appending `run.result` commit
      // together: a result is never stored without its audit events, and it costs one commit.
      recorded = await this.ctx.db.kysely.transaction().execute(async (trx) => {
        // Guarded on "not final yet": a result re-sent after a reconnect changes nothing.
        const finalised = await finaliseRun.changed(trx, {
          id: run.id,
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
        });
        if (finalised !== 1) return false;
        // Killed here, the transaction never commits: the run is not final, and the runner's
        // re-sent result (it was not acked) finalises and audits it after the restart.
        killPoint('server_after_finalise_before_audit');
        await this.recordResult(s, run, msg, trx);
        return true;
      });
      if (recorded) await this.emitStatus(run.id);
    }
    // A re-sent result for a final run: if this server died between finalising the run and
    // recording its audit events, they are recorded now, so the result is never unaudited.
    if (!recorded && !(await this.resultRecorded(run))) {
      const fresh = await this.ctx.db.kysely.selectFrom('runs').selectAll().where('id', '=', run.id).executeTakeFirst();
      if (fresh !== undefined && isFinal(fresh.status) && fresh.audit_hash === msg.audit_hash)
        await this.recordResult(s, run, msg);
    }
    killPoint('server_after_result_before_ack');
    s.send({ type: 'ack', request_id: run.id });
  }

  private async resultRecorded(run: RunsTable): Promise<boolean> {
    // A range of the (org_id, time) index, not a scan of the whole log by id: the event comes
    // after the run was created (an hour of slack for a clock stepped back meanwhile).
    const since = new Date(Date.parse(run.created_at) - 3_600_000).toISOString();
    const row = await this.ctx.db.kysely
      .selectFrom('audit_events')
      .select('seq')
      .where('org_id', '=', run.org_id)
      .where('time', '>=', since)
      .where('id', '=', run.id)
      .where('kind', '=', 'run.result')
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Mirror the runner's event and append the server's `run.result` event. */
  private async recordResult(
    s: RunnerSession,
    run: RunsTable,
    msg: ResultMessage,
    trx?: AuditTransaction,
  ): Promise<void> {
    if (msg.audit_event !== undefined)
      await mirrorRunnerEvent(this.ctx, s.runner.org_id, s.runner.id, msg.audit_event, trx);
    await this.ctx.audit.record(
      {
        ...resultEvent(s, run),
        status: msg.status,
        exitCode: msg.exit_code,
        durationMs: Math.round(msg.duration_ms),
        error: msg.error ?? null,
        data: { runner_event: msg.audit_hash, truncated: msg.truncated, clamped: msg.clamped },
      },
      trx,
    );
  }

  /** Tell live views of a run, on every instance, that its status changed. */
  async emitStatus(runId: string): Promise<void> {
    await this.emitStatusHere(runId);
    // Only other instances need the note (this one emitted above).
    if (this.ctx.cluster.shared) await this.publish({ t: 'status', id: runId });
  }

  private async emitStatusHere(runId: string): Promise<void> {
    // Nobody watching this run here (no SSE, MCP progress or waiting call): no row to read.
    if (this.events.listenerCount(`run:${runId}`) === 0) return;
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
