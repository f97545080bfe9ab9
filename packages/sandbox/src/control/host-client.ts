import { randomBytes } from 'node:crypto';
import { freemem } from 'node:os';
import {
  AIRLOCK_VERSION,
  EGRESS_EVENT_BOUNDS,
  encodeMessage,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  parseMessage,
  type SandboxCreateMessage,
  type SandboxEgressMessage,
  type SandboxExecMessage,
  type SandboxReadFileMessage,
  type SandboxReplyMessage,
  type SandboxWriteFileMessage,
  type WireMessage,
} from '@airlock/core';
import WebSocket from 'ws';
import type { EgressEvent } from '../egress/events.js';
import { SandboxError, toSandboxError } from '../errors.js';
import { EgressBody } from '../http/schemas.js';
import type { SandboxManager } from '../manager.js';
import type { Sandbox } from '../sandbox.js';
import { imageHash, imagePacks } from './image-hash.js';
import { redactWhole, StreamRedactor } from './output-redactor.js';

/** Why the host client stopped for good (it otherwise reconnects forever). */
export type HostStopReason = 'revoked' | 'unauthorized' | 'closed';

export interface SandboxHostOptions {
  /** Control plane base URL (http[s]://…). */
  readonly serverUrl: string;
  /** Runner token (`alr_…`) of the runner this host registered as. */
  readonly token: string;
  /** Host name shown in the control plane (the registered runner name). */
  readonly name: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly manager: SandboxManager;
  readonly logger?: (level: 'info' | 'warn' | 'error', msg: string) => void;
  readonly onStop?: (reason: HostStopReason, detail: string) => void;
  /** Backoff bounds in ms (tests shorten them). */
  readonly backoff?: { readonly minMs: number; readonly maxMs: number };
  /** How often capacity is re-advertised even when nothing changed (ms, default 30 000). */
  readonly refreshMs?: number;
  /** Egress events kept for the control plane while it is unreachable (default 10 000; older ones are dropped). */
  readonly egressQueue?: number;
}

/**
 * A daemon egress event as a `sandbox_egress` frame: every string clipped to the wire's
 * bounds (a malformed request from the guest can make the method or host long), the
 * host-local sandbox id at the top.
 */
export function egressFrame(e: EgressEvent): SandboxEgressMessage {
  const b = EGRESS_EVENT_BOUNDS;
  return {
    type: 'sandbox_egress',
    sandbox: e.sandbox,
    event: {
      time: e.time,
      method: e.method.slice(0, b.method),
      host: e.host.slice(0, b.host),
      port: Number.isInteger(e.port) && e.port >= 0 && e.port <= 65535 ? e.port : 0,
      addresses: e.addresses.slice(0, b.addresses).map((a) => a.slice(0, b.address)),
      decision: e.decision,
      reason: e.reason.slice(0, b.reason),
      intercepted: e.intercepted,
      secrets_used: e.secrets_used.slice(0, 16),
      bytes_up: Math.max(0, Math.round(e.bytes_up)),
      bytes_down: Math.max(0, Math.round(e.bytes_down)),
      duration_ms: Math.max(0, e.duration_ms),
    },
  };
}

/** WebSocket URL of the runner endpoint for a server base URL. */
function connectUrl(serverUrl: string): string {
  const u = new URL(serverUrl);
  u.protocol = u.protocol === 'https:' || u.protocol === 'wss:' ? 'wss:' : 'ws:';
  u.pathname = `${u.pathname.replace(/\/$/, '')}/api/v1/runners/connect`;
  return u.toString();
}

/** A refusal of the host's own (not a daemon error): the image is not the one the control plane trusts. */
class HostRefusal extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** An error reply that always fits the schema (codes are short snake_case). */
function errorReply(requestId: string, e: unknown): SandboxReplyMessage {
  const err = e instanceof SandboxError || e instanceof HostRefusal ? e : toSandboxError(e);
  return {
    type: 'sandbox_reply',
    request_id: requestId,
    error: { code: err.code.slice(0, 64), message: err.message.slice(0, 4000) },
  };
}

/**
 * A sandbox daemon's outbound connection to the control plane: it dials out like a runner
 * (no inbound port), advertises the `sandbox` capability, its images (trust-on-hash),
 * backend, isolation and capacity, and serves create/exec/file/destroy requests by calling
 * the local SandboxManager. Output is redacted here, before it leaves the host.
 */
export class SandboxHostClient {
  private ws: WebSocket | undefined;
  private attempt = 0;
  private stopped = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private refresh: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private lastFrame = Date.now();
  private lastAdvert = '';
  /** Aborts for execs in flight, so a lost connection does not leave guest code running unwatched. */
  private readonly running = new Map<string, AbortController>();
  /**
   * Egress events the control plane has not acknowledged yet, by id, oldest first: sent as
   * they happen and again after every `welcome` until a `sandbox_egress_ack` names them
   * (bounded; the daemon's per-sandbox log keeps its own copy).
   */
  private readonly egressUnacked = new Map<string, SandboxEgressMessage>();
  /** This process's prefix of egress event ids, so ids stay unique across host restarts. */
  private readonly egressBoot = randomBytes(6).toString('hex');
  private egressSeq = 0;
  /** Egress events dropped from a full queue since the last report. */
  egressDropped = 0;

  /** Egress events sent or queued and not yet acknowledged (tests look at it). */
  get egressUnackedCount(): number {
    return this.egressUnacked.size;
  }
  connected = false;

  constructor(private readonly opts: SandboxHostOptions) {}

  private say(level: 'info' | 'warn' | 'error', msg: string): void {
    this.opts.logger?.(level, msg);
  }

  start(): void {
    this.connect();
  }

  stop(reason: HostStopReason = 'closed', detail = 'stopped'): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.heartbeat);
    clearInterval(this.refresh);
    clearTimeout(this.retryTimer);
    this.ws?.close(1000, 'sandbox host stopping');
    this.opts.onStop?.(reason, detail);
  }

  private connect(): void {
    if (this.stopped) return;
    const url = connectUrl(this.opts.serverUrl);
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${this.opts.token}` },
      maxPayload: MAX_FRAME_BYTES,
      handshakeTimeout: 10_000,
    });
    this.ws = ws;
    ws.on('unexpected-response', (_req, res) => {
      if (res.statusCode === 401) {
        this.say('error', 'control plane refused the runner token (HTTP 401): revoked or invalid');
        this.stop('unauthorized', 'the control plane refused the runner token');
      } else this.say('warn', `control plane answered HTTP ${res.statusCode} to the WebSocket upgrade`);
      ws.terminate();
    });
    ws.on('open', () => {
      this.lastFrame = Date.now();
      this.send({
        type: 'hello',
        protocol: PROTOCOL_VERSION,
        runner: { name: this.opts.name },
        version: AIRLOCK_VERSION,
        packs: imagePacks(this.opts.manager.manifest, AIRLOCK_VERSION),
        capabilities: ['sandbox'],
        labels: { ...this.opts.labels },
      });
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
      clearInterval(this.refresh);
      // Nobody is left to receive the result of an exec in flight: stop its guest processes.
      for (const ac of this.running.values()) ac.abort();
      if (code === 4403) {
        this.say('error', `control plane revoked this host: ${reason.toString()}`);
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
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  private send(msg: WireMessage): void {
    if (this.ws?.readyState !== WebSocket.OPEN) return;
    try {
      this.ws.send(encodeMessage(msg));
    } catch (e) {
      // A frame that does not fit the protocol is a bug here; it must not stop the caller.
      this.say('error', `not sending an invalid ${msg.type} frame: ${(e as Error).message}`);
    }
  }

  /** Current offer; sent when it differs from the last one (or `force`). */
  advertise(force = false): void {
    if (!this.connected) return;
    const m = this.opts.manager;
    const info = m.info();
    const limits = info['limits'] as { max_sandboxes: number };
    const live = m.list().filter((s) => s.state === 'running' || s.state === 'starting');
    const msg: WireMessage = {
      type: 'sandbox_host',
      backend: m.status.name,
      isolation: m.status.isolation,
      kvm: m.status.kvm,
      images: Object.keys(m.manifest.packs)
        .sort()
        .map((pack) => ({ pack, hash: imageHash(m.manifest, pack)! })),
      capacity: {
        slots_total: limits.max_sandboxes,
        slots_free: Math.max(0, limits.max_sandboxes - live.length),
        // Rounded to 64 MiB so small fluctuations do not flood the control plane.
        memory_free_mb: Math.floor(freemem() / 2 ** 20 / 64) * 64,
      },
      sandboxes: live.map((s) => s.id),
      egress: (info['egress'] as { enabled?: boolean } | undefined)?.enabled === true,
    };
    const text = JSON.stringify(msg);
    if (!force && text === this.lastAdvert) return;
    this.lastAdvert = text;
    this.send(msg);
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
        this.say('info', `connected to the control plane as sandbox host ${msg.runner_id}`);
        this.startTimers(msg.heartbeat_s);
        this.advertise(true);
        this.flushEgress();
        return;
      case 'ping':
        this.send({ type: 'pong', ts: msg.ts });
        return;
      case 'pong':
        return;
      case 'pack_files_request':
        // Images are binary: the listing (with hashes) is what an admin reviews.
        this.send({
          type: 'pack_files',
          request_id: msg.request_id,
          pack: msg.pack,
          hash: msg.hash,
          files: imagePacks(this.opts.manager.manifest, AIRLOCK_VERSION)
            .filter((p) => p.name === msg.pack && p.hash === msg.hash)
            .flatMap((p) => p.files.filter((f) => msg.paths.includes(f.path)))
            .map((f) => ({ ...f, content: null })),
        });
        return;
      case 'sandbox_create':
        return this.reply(msg.request_id, () => this.create(msg));
      case 'sandbox_exec':
        return this.reply(msg.request_id, () => this.exec(msg));
      case 'sandbox_write_file':
        return this.reply(msg.request_id, () => this.writeFile(msg));
      case 'sandbox_read_file':
        return this.reply(msg.request_id, () => this.readFile(msg));
      case 'sandbox_destroy':
        return this.reply(msg.request_id, async () => {
          await this.opts.manager.delete(msg.sandbox);
          return { type: 'sandbox_reply', request_id: msg.request_id };
        });
      case 'sandbox_egress_ack':
        for (const id of msg.ids) this.egressUnacked.delete(id);
        return;
      case 'error':
        this.say('warn', `control plane error ${msg.code}: ${msg.message}`);
        return;
      default:
        this.send({ type: 'error', code: 'invalid_message', message: `a sandbox host does not serve ${msg.type}` });
    }
  }

  private startTimers(heartbeatS: number): void {
    clearInterval(this.heartbeat);
    clearInterval(this.refresh);
    this.heartbeat = setInterval(() => {
      if (Date.now() - this.lastFrame > 3 * heartbeatS * 1000) {
        this.say('warn', 'no frame from the control plane for 3 heartbeats; reconnecting');
        this.ws?.terminate();
        return;
      }
      this.send({ type: 'ping', ts: Date.now() });
    }, heartbeatS * 1000);
    this.heartbeat.unref();
    // A sandbox failing or reaching its lifetime changes the offer without a request.
    const every = this.opts.refreshMs ?? 30_000;
    let forcedAt = Date.now();
    this.refresh = setInterval(
      () => {
        const force = Date.now() - forcedAt >= every;
        if (force) forcedAt = Date.now();
        this.advertise(force);
      },
      Math.min(2000, every),
    );
    this.refresh.unref();
  }

  private async reply(requestId: string, fn: () => Promise<SandboxReplyMessage>): Promise<void> {
    let out: SandboxReplyMessage;
    try {
      out = await fn();
    } catch (e) {
      out = errorReply(requestId, e);
    }
    this.send(out);
    this.advertise();
  }

  private sandbox(id: string): Sandbox {
    return this.opts.manager.get(id);
  }

  private async create(msg: SandboxCreateMessage): Promise<SandboxReplyMessage> {
    // The control plane asks for the image it trusts; a host whose image differs refuses.
    const have = imageHash(this.opts.manager.manifest, msg.language_pack);
    if (have === undefined)
      throw new SandboxError('unknown_language_pack', `language_pack "${msg.language_pack}" is not built on this host`);
    if (have !== msg.image_hash)
      throw new HostRefusal(
        'image_untrusted',
        `this host's ${msg.language_pack} image is ${have}, not the trusted ${msg.image_hash}`,
      );
    if (msg.egress !== undefined) {
      // The daemon's own rules, before anything boots: the wire checks the shape, this also
      // refuses what only the host knows to refuse (an internal IP literal, for one).
      const checked = EgressBody.safeParse(msg.egress);
      if (!checked.success) {
        const issue = checked.error.issues[0];
        const at = ['egress', ...(issue?.path ?? [])].map(String).join('.');
        throw new SandboxError('invalid_request', `${at}: ${issue?.message ?? 'invalid'}`);
      }
      for (const sec of msg.egress.secrets ?? [])
        if (msg.env !== undefined && Object.hasOwn(msg.env, sec.name))
          throw new SandboxError(
            'invalid_request',
            `egress.secrets: ${sec.name} is also set in env; a secret's name is its environment variable`,
          );
    }
    const sb = await this.opts.manager.create({
      language_pack: msg.language_pack,
      memory_mb: msg.memory_mb,
      vcpus: msg.vcpus,
      lifetime_s: msg.lifetime_s,
      ...(msg.env === undefined ? {} : { env: msg.env }),
      ...(msg.egress === undefined ? {} : { egress: msg.egress }),
    });
    // Guest code cannot run before this reply, so subscribing now misses no event.
    sb.egress?.log.on((e) => this.forwardEgress(e));
    return {
      type: 'sandbox_reply',
      request_id: msg.request_id,
      sandbox: {
        id: sb.id,
        language_pack: sb.pack,
        state: sb.state,
        memory_mb: sb.limits.memory_mb,
        vcpus: sb.limits.vcpus,
        lifetime_s: sb.limits.lifetime_s,
        boot_ms: sb.bootMs ?? null,
      },
    };
  }

  /** Send an egress event now (if connected), and keep it until the control plane acknowledges it. */
  private forwardEgress(e: EgressEvent): void {
    const frame = { ...egressFrame(e), id: `${this.egressBoot}-${++this.egressSeq}` };
    this.egressUnacked.set(frame.id, frame);
    const max = this.opts.egressQueue ?? 10_000;
    while (this.egressUnacked.size > max) {
      this.egressUnacked.delete(this.egressUnacked.keys().next().value as string);
      this.egressDropped++;
    }
    if (this.connected && this.ws?.readyState === WebSocket.OPEN) this.send(frame);
  }

  /**
   * After a `welcome`: every unacknowledged egress event again, in order: those queued while
   * disconnected and those the last connection may have lost in flight. The server records
   * an id once, so one it already had is only acknowledged again.
   */
  private flushEgress(): void {
    if (this.egressDropped > 0) {
      this.say(
        'warn',
        `${this.egressDropped} egress events were dropped while the control plane was unreachable (the daemon's per-sandbox egress log still has the last 1000 of each sandbox)`,
      );
      this.egressDropped = 0;
    }
    for (const frame of this.egressUnacked.values()) {
      if (!this.connected || this.ws?.readyState !== WebSocket.OPEN) return;
      this.send(frame);
    }
  }

  private async exec(msg: SandboxExecMessage): Promise<SandboxReplyMessage> {
    const sb = this.sandbox(msg.sandbox);
    const streams = { stdout: new StreamRedactor(), stderr: new StreamRedactor() };
    let seq = 0;
    const emit = (stream: 'stdout' | 'stderr', data: string): void => {
      if (data === '') return;
      // Chunks stay well under the frame limit: a large burst goes out in pieces.
      for (let i = 0; i < data.length; i += 64 * 1024)
        this.send({
          type: 'sandbox_output',
          request_id: msg.request_id,
          seq: seq++,
          stream,
          data: data.slice(i, i + 64 * 1024),
        });
    };
    const ac = new AbortController();
    this.running.set(msg.request_id, ac);
    let r: Awaited<ReturnType<Sandbox['exec']>>;
    try {
      r = await sb.exec(
        {
          ...(msg.code === undefined ? {} : { code: msg.code }),
          ...(msg.argv === undefined ? {} : { argv: msg.argv }),
          timeout_ms: msg.timeout_ms,
          ...(msg.stdin === undefined ? {} : { stdin: msg.stdin }),
          ...(msg.env === undefined ? {} : { env: msg.env }),
          max_output_bytes: msg.max_output_bytes,
        },
        (e) => {
          if (e.type === 'stdout' || e.type === 'stderr') emit(e.type, streams[e.type].push(e.data));
        },
        ac.signal,
      );
    } finally {
      this.running.delete(msg.request_id);
    }
    emit('stdout', streams.stdout.flush());
    emit('stderr', streams.stderr.flush());
    // The final result is redacted as a whole too (it is what the control plane stores).
    const stdout = redactWhole(r.stdout);
    const stderr = redactWhole(r.stderr);
    const hits = [...new Set([...stdout.hits, ...stderr.hits, ...streams.stdout.hits, ...streams.stderr.hits])];
    let reply: SandboxReplyMessage = {
      type: 'sandbox_reply',
      request_id: msg.request_id,
      exec: {
        stdout: stdout.text,
        stderr: stderr.text,
        exit_code: r.exit_code,
        signal: r.signal,
        duration_ms: r.duration_ms,
        timed_out: r.timed_out,
        truncated: r.truncated,
        redactions: hits.slice(0, 256),
      },
    };
    // JSON escaping can blow up control bytes sixfold: clip until the frame fits.
    for (let keep = MAX_FRAME_BYTES / 4; ; keep = Math.floor(keep / 2)) {
      try {
        encodeMessage(reply);
        return reply;
      } catch {
        const e = reply.exec!;
        reply = {
          ...reply,
          exec: { ...e, stdout: e.stdout.slice(0, keep), stderr: e.stderr.slice(0, keep), truncated: true },
        };
      }
    }
  }

  private async writeFile(msg: SandboxWriteFileMessage): Promise<SandboxReplyMessage> {
    const sb = this.sandbox(msg.sandbox);
    const bytes = Buffer.from(msg.content_b64, 'base64');
    const size = await sb.putFile(
      msg.path,
      msg.mode ?? 0o644,
      (async function* () {
        yield bytes;
      })(),
    );
    return { type: 'sandbox_reply', request_id: msg.request_id, file: { path: msg.path, size } };
  }

  private async readFile(msg: SandboxReadFileMessage): Promise<SandboxReplyMessage> {
    const sb = this.sandbox(msg.sandbox);
    const chunks: Buffer[] = [];
    let got = 0;
    const size = await sb.getFile(msg.path, (c) => {
      if (got < msg.max_bytes) chunks.push(c.subarray(0, msg.max_bytes - got));
      got += c.length;
    });
    if (size > msg.max_bytes)
      throw new SandboxError(
        'payload_too_large',
        `${msg.path} is ${size} bytes; at most ${msg.max_bytes} bytes can be read through the control plane`,
      );
    let content = Buffer.concat(chunks);
    // Text leaves the host redacted like any output; binary content passes as it is.
    try {
      const text = new TextDecoder('utf-8', { fatal: true }).decode(content);
      const red = redactWhole(text);
      if (red.hits.length > 0) content = Buffer.from(red.text, 'utf8');
    } catch {
      // not UTF-8: binary
    }
    return {
      type: 'sandbox_reply',
      request_id: msg.request_id,
      file: { path: msg.path, size, content_b64: content.toString('base64') },
    };
  }
}
