import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import {
  AIRLOCK_VERSION,
  type AuditEvent,
  argsJsonSchema,
  digestArgs,
  encodeMessage,
  PROTOCOL_VERSION,
  parseMessage,
  type RunActionMessage,
  type WireMessage,
} from '@airlock/core';
import WebSocket from 'ws';
import type { Catalog } from '../catalog.js';
import type { RunnerConfig } from '../config.js';
import type { ActionEngine, RunResult } from '../engine.js';
import type { SecurityLog } from '../security-log.js';
import { NonceStore } from '../signing/nonce-store.js';
import { DispatchVerifier } from '../signing/verify.js';
import { DedupRing } from './dedup-ring.js';
import { killPoint, killPointArmed } from './kill-point.js';
import { isNoSpace, logSpaceProblem } from './log-space.js';
import { findLoggedAttempt } from './logged-attempt.js';
import { Outbox } from './outbox.js';

/** Why the client stopped for good (it otherwise reconnects forever). */
export type StopReason = 'revoked' | 'unauthorized' | 'closed';

export interface ControlClientOptions {
  readonly serverUrl: string;
  readonly token: string;
  readonly config: RunnerConfig;
  readonly engine: ActionEngine;
  readonly log: SecurityLog;
  /** Folder for the outbox and dedup ring (default: next to the security log). */
  readonly stateDir: string;
  readonly logger?: (level: 'info' | 'warn' | 'error', msg: string) => void;
  /** Called once when the client stops for good. */
  readonly onStop?: (reason: StopReason, detail: string) => void;
  /** Backoff bounds in ms (tests shorten them). */
  readonly backoff?: { readonly minMs: number; readonly maxMs: number };
}

/** WebSocket URL of the runner endpoint for a server base URL. */
export function connectUrl(serverUrl: string): string {
  const u = new URL(serverUrl);
  u.protocol = u.protocol === 'https:' || u.protocol === 'wss:' ? 'wss:' : 'ws:';
  u.pathname = `${u.pathname.replace(/\/$/, '')}/api/v1/runners/connect`;
  return u.toString();
}

/**
 * Backpressure on the one WebSocket. Output lines are best effort (the result is the
 * record): above OUTPUT_HIGH_WATER bytes queued for a slow reader they are dropped rather
 * than buffered. Above SOCKET_HARD_LIMIT the peer is not reading at all (a half-open or
 * stalled connection): the socket is dropped and the outbox re-sends results after the
 * reconnect. Together they keep the runner's memory bounded whatever the network does.
 */
export const OUTPUT_HIGH_WATER = 1024 * 1024;
export const SOCKET_HARD_LIMIT = 8 * 1024 * 1024;

/** Error code of a refusal sent instead of `accepted` when the security log cannot record. */
export const LOG_UNAVAILABLE = 'runner_log_unavailable';

/** Files a pack offers for trust review: text up to 256 KiB, binary as null. */
const MAX_REVIEW_FILE = 256 * 1024;

/**
 * Frames sent in one turn of the event loop leave in one write: the socket is corked at the
 * first and uncorked when the turn ends. Runs finishing together (one security-log batch,
 * one outbox write) send their frames together; one syscall each cost more than the frame.
 */
function corkForTurn(ws: WebSocket): void {
  const sock = (ws as unknown as { _socket?: Socket })._socket;
  if (sock === undefined || sock.writableCorked > 0) return;
  sock.cork();
  setImmediate(() => sock.uncork());
}

/**
 * The runner's outbound connection to the control plane. Dials out (never listens),
 * reconnects with jittered exponential backoff, runs each request through the engine
 * exactly once (outbox + dedup ring), streams output, and re-sends un-acked results.
 */
export class ControlClient {
  private ws: WebSocket | undefined;
  private attempt = 0;
  private stopped = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private lastFrame = Date.now();
  private readonly running = new Map<string, AbortController>();
  /** Requests whose acceptance is being made durable (not running yet). */
  private readonly accepting = new Map<string, AbortController>();
  readonly outbox: Outbox;
  readonly ring: DedupRing;
  private catalog: Catalog;
  /** Signed-dispatch verification, when the config names an organisation root key. */
  private readonly verifier: DispatchVerifier | undefined;
  connected = false;
  /** Output frames dropped because the control plane read too slowly (best effort). */
  droppedOutput = 0;

  constructor(
    private readonly opts: ControlClientOptions,
    catalog: Catalog,
  ) {
    this.catalog = catalog;
    this.outbox = new Outbox(join(opts.stateDir, 'outbox'));
    this.ring = new DedupRing(join(opts.stateDir, 'acked-requests'));
    const signing = opts.config.signing;
    this.verifier =
      signing === undefined
        ? undefined
        : new DispatchVerifier(signing, opts.config.name, new NonceStore(join(opts.stateDir, 'signing-nonces')));
    this.recoverInterrupted();
  }

  private say(level: 'info' | 'warn' | 'error', msg: string): void {
    this.opts.logger?.(level, msg);
  }

  /** Start connecting (and keep reconnecting until stop()). */
  start(): void {
    this.connect();
  }

  /** Re-advertise after a pack reload. */
  updateCatalog(catalog: Catalog): void {
    this.catalog = catalog;
    if (this.connected) this.send(this.hello());
  }

  stop(reason: StopReason = 'closed', detail = 'stopped'): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.retryTimer);
    this.ws?.close(1000, 'runner stopping');
    this.opts.onStop?.(reason, detail);
  }

  /**
   * A request accepted but never finished means the runner died while it ran. It is not run
   * again: it gets a definite `error` result, recorded in the security log like any attempt.
   */
  private recoverInterrupted(): void {
    for (const e of this.outbox.entries()) {
      if (e.result !== undefined) continue;
      // Killed after the attempt was logged but before its result was kept: report that attempt.
      const logged = findLoggedAttempt(this.opts.log.path, e.requestId);
      if (logged !== undefined) {
        this.outbox.complete(e.requestId, this.resultFromEvent(e.requestId, logged));
        continue;
      }
      const req = e.request as Partial<RunActionMessage>;
      const event = this.recordAttempt(e.requestId, req, 'error', {
        code: 'runner_restarted',
        message: 'the runner stopped while this action was running; it was not run again',
      });
      this.outbox.complete(
        e.requestId,
        this.resultFrame(e.requestId, 'error', event, {
          code: 'runner_restarted',
          message: 'the runner stopped while this action was running; it was not run again',
        }),
      );
    }
  }

  private recordAttempt(
    id: string,
    req: Partial<RunActionMessage>,
    status: 'error' | 'cancelled' | 'validation_failed',
    error: { code: string; message: string },
  ): AuditEvent {
    const args = (req.args ?? {}) as Record<string, unknown>;
    return this.opts.log.append({
      id,
      time: new Date().toISOString(),
      kind: 'action.attempt',
      principal: { ...(req.principal ?? { type: 'unknown', id: 'unknown' }) },
      runner: this.opts.config.name,
      action: req.action ?? '(unknown: cancelled before it arrived)',
      pack_hash: req.pack_hash ?? null,
      args_digest: digestArgs(args),
      args: {},
      reason: null,
      status,
      exit_code: null,
      duration_ms: 0,
      output_digest: null,
      output_bytes: 0,
      truncated: false,
      clamped: [],
      error,
    });
  }

  /** The result frame for an attempt already recorded in the security log. */
  private resultFromEvent(id: string, ev: AuditEvent): Record<string, unknown> {
    return {
      type: 'result',
      request_id: id,
      status: ev.status,
      exit_code: ev.exit_code,
      duration_ms: ev.duration_ms,
      truncated: ev.truncated,
      output_bytes: ev.output_bytes,
      clamped: JSON.parse(JSON.stringify(ev.clamped)) as unknown[],
      audit_hash: ev.hash,
      ...(ev.error === null
        ? {}
        : { error: { code: ev.error.code.slice(0, 64), message: ev.error.message.slice(0, 4000) } }),
      finished_at: ev.time,
      audit_event: JSON.parse(JSON.stringify(ev)) as Record<string, unknown>,
    };
  }

  private resultFrame(
    id: string,
    status: 'error' | 'cancelled' | 'validation_failed',
    event: AuditEvent,
    error: { code: string; message: string },
  ): Record<string, unknown> {
    return {
      type: 'result',
      request_id: id,
      status,
      exit_code: null,
      duration_ms: 0,
      truncated: false,
      output_bytes: 0,
      clamped: [],
      audit_hash: event.hash,
      error,
      finished_at: event.time,
      audit_event: event,
    };
  }

  private connect(): void {
    if (this.stopped) return;
    const url = connectUrl(this.opts.serverUrl);
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${this.opts.token}` },
      maxPayload: 1024 * 1024,
      handshakeTimeout: 10_000,
    });
    this.ws = ws;
    ws.on('unexpected-response', (_req, res) => {
      if (res.statusCode === 401) {
        this.say('error', `control plane refused the runner token (HTTP 401): revoked or invalid`);
        this.stop('unauthorized', 'the control plane refused the runner token');
      } else this.say('warn', `control plane answered HTTP ${res.statusCode} to the WebSocket upgrade`);
      ws.terminate();
    });
    ws.on('open', () => {
      this.lastFrame = Date.now();
      this.send(this.hello());
    });
    ws.on('message', (data: Buffer) => {
      this.lastFrame = Date.now();
      void this.onMessage(data).catch((e: unknown) =>
        this.say('error', `frame handling failed: ${(e as Error).message}`),
      );
    });
    ws.on('close', (code, reason) => {
      this.connected = false;
      clearInterval(this.heartbeat);
      if (code === 4403) {
        this.say('error', `control plane revoked this runner: ${reason.toString()}`);
        this.stop('revoked', reason.toString());
        return;
      }
      this.scheduleReconnect();
    });
    ws.on('error', (e) => this.say('warn', `connection to ${url}: ${e.message}`));
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const { minMs, maxMs } = this.opts.backoff ?? { minMs: 1000, maxMs: 60_000 };
    const base = Math.min(maxMs, minMs * 2 ** this.attempt);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.attempt++;
    this.say('info', `reconnecting in ${delay} ms`);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  private send(msg: WireMessage | Record<string, unknown>, onWritten?: () => void): void {
    const ws = this.ws;
    if (ws?.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > SOCKET_HARD_LIMIT) {
      this.say('warn', `control plane is not reading (${ws.bufferedAmount} bytes queued); reconnecting`);
      ws.terminate();
      return;
    }
    if (msg.type === 'output' && ws.bufferedAmount > OUTPUT_HIGH_WATER) {
      this.droppedOutput++;
      return;
    }
    corkForTurn(ws);
    ws.send(
      typeof (msg as WireMessage).type === 'string' ? encodeMessage(msg as WireMessage) : JSON.stringify(msg),
      onWritten === undefined ? undefined : () => onWritten(),
    );
  }

  private hello(): WireMessage {
    const head = this.opts.log.currentHead();
    return {
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      runner: { name: this.opts.config.name },
      version: AIRLOCK_VERSION,
      packs: this.catalog.packs.map(({ pack }) => ({
        name: pack.name,
        version: pack.version,
        hash: pack.hash,
        actions: pack.actions.map((a) => a.id),
        action_risks: Object.fromEntries(pack.actions.map((a) => [a.id, a.risk])),
        action_specs: pack.actions.map((a) => ({
          id: a.id,
          title: a.title,
          description: a.description,
          risk: a.risk,
          args_schema: argsJsonSchema(a.args),
        })),
        files: pack.files.map((f) => ({ path: f.path, sha256: f.sha256 })),
      })),
      capabilities: ['actions'],
      labels: { ...this.opts.config.labels },
      outbox: { pending: this.outbox.entries().length },
      log_head: head,
    };
  }

  private async onMessage(data: Buffer): Promise<void> {
    const parsed = parseMessage(new Uint8Array(data));
    if (!parsed.ok) {
      this.send({ type: 'error', code: 'invalid_message', message: parsed.error.message });
      return;
    }
    const msg = parsed.value;
    switch (msg.type) {
      case 'welcome':
        this.connected = true;
        this.attempt = 0;
        this.say('info', `connected to the control plane as runner ${msg.runner_id}`);
        this.startHeartbeat(msg.heartbeat_s);
        this.flushOutbox();
        return;
      case 'run_action':
        return this.onRunAction(msg);
      case 'cancel': {
        // A request still being accepted is cancelled like a running one (it will start aborted).
        const ac = this.running.get(msg.request_id) ?? this.accepting.get(msg.request_id);
        if (ac !== undefined) {
          ac.abort();
          return;
        }
        if (this.outbox.has(msg.request_id) || this.ring.has(msg.request_id)) return;
        // Never received: answer with a definite status and refuse it should it arrive later.
        const error = {
          code: 'cancelled_before_start',
          message: msg.reason ?? 'cancelled before the runner received it',
        };
        const event = this.recordAttempt(msg.request_id, {}, 'cancelled', error);
        const frame = this.resultFrame(msg.request_id, 'cancelled', event, error);
        this.outbox.accept(msg.request_id, { request_id: msg.request_id, cancelled: true });
        this.outbox.complete(msg.request_id, frame);
        this.send(frame);
        return;
      }
      case 'ack':
        if (this.outbox.has(msg.request_id) && this.outbox.result(msg.request_id) !== undefined) {
          this.ring.add(msg.request_id);
          this.outbox.remove(msg.request_id);
        }
        return;
      case 'pack_files_request':
        return this.onPackFiles(msg);
      case 'ping':
        this.send({ type: 'pong', ts: msg.ts });
        return;
      case 'pong':
        return;
      case 'error':
        this.say('warn', `control plane error ${msg.code}: ${msg.message}`);
        return;
      default:
        this.send({ type: 'error', code: 'invalid_message', message: `a server may not send ${msg.type}` });
    }
  }

  private startHeartbeat(seconds: number): void {
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => {
      if (Date.now() - this.lastFrame > 3 * seconds * 1000) {
        this.say('warn', 'no frame from the control plane for 3 heartbeats; reconnecting');
        this.ws?.terminate();
        return;
      }
      this.send({ type: 'ping', ts: Date.now() });
    }, seconds * 1000);
    this.heartbeat.unref();
  }

  /** After (re)connecting: re-send output and results the control plane has not acknowledged. */
  private flushOutbox(): void {
    for (const e of this.outbox.entries()) {
      if (this.running.has(e.requestId)) continue;
      for (const o of e.outputs) this.send(o);
      if (e.result !== undefined) this.send(e.result);
    }
  }

  private async onRunAction(msg: RunActionMessage): Promise<void> {
    const id = msg.request_id;
    if (this.running.has(id) || this.accepting.has(id)) return; // already here in this process
    if (this.outbox.has(id)) {
      const done = this.outbox.result(id);
      if (done !== undefined) this.send(done);
      return;
    }
    if (this.ring.has(id)) {
      this.send({
        type: 'error',
        code: 'duplicate_request',
        message: `request ${id} was already executed and acknowledged`,
        request_id: id,
      });
      return;
    }
    killPoint('runner_before_accept');
    // Never run what cannot be recorded: refuse (not accept) while the log's disk is full.
    const ac = new AbortController();
    let problem = logSpaceProblem(dirname(this.opts.log.path));
    if (problem === undefined) {
      // Claimed in memory while the accept is made durable (off the event loop), so a
      // duplicate run_action arriving meanwhile cannot start a second execution.
      this.accepting.set(id, ac);
      try {
        await this.outbox.acceptDurable(id, msg as unknown as Record<string, unknown>);
      } catch (e) {
        if (!isNoSpace(e)) throw e;
        this.outbox.remove(id);
        problem = `the runner cannot write its outbox: ${(e as Error).message}`;
      } finally {
        this.accepting.delete(id);
      }
    }
    if (problem !== undefined) {
      this.say('error', `refused ${msg.action} (${id}): ${problem}`);
      this.send({ type: 'error', code: LOG_UNAVAILABLE, message: `refused, nothing ran: ${problem}`, request_id: id });
      return;
    }
    // Signed dispatch: the runner checks the approver signature itself, whatever the server says.
    const refusal = this.verifier?.check(msg, this.catalog.findAction(msg.action)?.action.risk);
    if (refusal !== undefined) {
      this.say('warn', `refused ${msg.action} (${id}): ${refusal.code}`);
      const event = this.recordAttempt(id, msg, 'validation_failed', refusal);
      const frame = this.resultFrame(id, 'validation_failed', event, refusal);
      this.outbox.complete(id, frame);
      this.send({ type: 'accepted', request_id: id });
      this.send(frame);
      return;
    }
    this.running.set(id, ac);
    this.send({ type: 'accepted', request_id: id });
    let result: RunResult;
    try {
      result = await this.opts.engine.run(
        {
          requestId: id,
          action: msg.action,
          packHash: msg.pack_hash,
          args: msg.args,
          ...(msg.limits === undefined ? {} : { limits: msg.limits }),
          reason: msg.reason,
          principal: msg.principal,
        },
        {
          signal: ac.signal,
          onOutput: (l) => {
            const frame = {
              type: 'output',
              request_id: id,
              seq: l.seq,
              stream: l.stream,
              line: l.line,
              ...(l.partial ? { partial: true } : {}),
            };
            this.outbox.appendOutput(id, frame);
            this.send(frame);
            killPoint('runner_during_output');
          },
        },
      );
    } catch (e) {
      if (!isNoSpace(e)) throw e;
      // The attempt ran but its event could not be written: say so loudly; the entry stays
      // in the outbox and is settled (recorded as interrupted) when the runner restarts.
      this.say('error', `the security log is full; attempt ${id} could not be recorded: ${(e as Error).message}`);
      this.send({
        type: 'error',
        code: LOG_UNAVAILABLE,
        message: `the runner's security log could not record this attempt: ${(e as Error).message}`,
        request_id: id,
      });
      return;
    } finally {
      this.running.delete(id);
    }
    killPoint('runner_after_exec_before_result');
    const frame = {
      type: 'result',
      request_id: id,
      status: result.status,
      exit_code: result.exitCode,
      duration_ms: result.durationMs,
      truncated: result.truncated,
      output_bytes: result.outputBytes,
      clamped: result.clamped.map((c) => ({ ...c })),
      audit_hash: result.auditHash,
      ...(result.error === null
        ? {}
        : { error: { code: result.error.code.slice(0, 64), message: result.error.message.slice(0, 4000) } }),
      started_at: result.startedAt,
      finished_at: result.finishedAt,
      audit_event: JSON.parse(JSON.stringify(result.auditEvent)) as Record<string, unknown>,
    };
    await this.outbox.completeDurable(id, frame);
    // Test-only: die once the result has reached the socket, before the ack can arrive.
    this.send(
      frame,
      killPointArmed('runner_after_result_before_ack') ? () => killPoint('runner_after_result_before_ack') : undefined,
    );
  }

  private onPackFiles(msg: Extract<WireMessage, { type: 'pack_files_request' }>): void {
    const loaded = this.catalog.findPack(msg.pack);
    if (loaded === undefined || loaded.pack.hash !== msg.hash) {
      this.send({
        type: 'error',
        code: 'unknown_pack',
        message: `no pack ${msg.pack} with hash ${msg.hash} loaded`,
        request_id: msg.request_id,
      });
      return;
    }
    const listing = new Map(loaded.pack.files.map((f) => [f.path, f.sha256]));
    let budget = 768 * 1024;
    const files = msg.paths
      .filter((p) => listing.has(p))
      .map((path) => {
        let content: string | null = null;
        try {
          const bytes = readFileSync(join(loaded.dir, path));
          const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
          const same = createHash('sha256').update(bytes).digest('hex') === listing.get(path);
          if (same && bytes.length <= MAX_REVIEW_FILE && bytes.length <= budget) {
            content = text;
            budget -= bytes.length;
          }
        } catch {
          content = null; // binary (not UTF-8) or unreadable
        }
        return { path, sha256: listing.get(path)!, content };
      });
    this.send({ type: 'pack_files', request_id: msg.request_id, pack: msg.pack, hash: msg.hash, files });
  }
}
