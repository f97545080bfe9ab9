import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { SandboxError } from '../errors.js';
import {
  CHUNK,
  type ConfigFrameSpec,
  decodeGuestFrame,
  type ExecFrameSpec,
  encode,
  FrameSplitter,
  GUEST_ERROR,
  type GuestFrame,
  PROTOCOL_VERSION,
  ProtocolViolation,
} from './protocol.js';

/** How a guest process ended. */
export interface ExitInfo {
  readonly exitCode: number;
  readonly signal: number;
  readonly timedOut: boolean;
  readonly truncated: boolean;
  readonly durationMs: number;
}

/** Callbacks for one running guest process. */
export interface ExecHandlers {
  onStarted?(pid: number): void;
  onStdout?(data: Buffer): void;
  onStderr?(data: Buffer): void;
}

/** A process started in the guest. */
export interface GuestProcess {
  readonly id: number;
  /** Resolves when the guest reports the exit; rejects with a SandboxError when the channel is lost. */
  readonly done: Promise<ExitInfo>;
  writeStdin(data: Buffer): Promise<void>;
  closeStdin(): void;
  signal(signo: number): void;
}

/**
 * Receiver of egress stream frames (see NET_* in proto.h). The stream ids are
 * the guest's; `onReset` says every stream died with the connection.
 */
export interface NetHandler {
  onOpen(id: number): void;
  onData(id: number, data: Buffer): void;
  onClose(id: number): void;
  onAck(id: number, bytes: number): void;
  onReset(): void;
}

type Pending = {
  onFrame(f: GuestFrame): boolean; // true when the request is complete
  fail(e: SandboxError): void;
};

/** Longest wait for READY on one connection before trying a fresh one. */
const ATTEMPT_MS = 2000;
/** Pause between dropping a connection and opening the next. */
const HANGUP_GRACE_MS = 200;

/** Opens a fresh byte stream to the guest's control channel. */
export type Connector = () => Promise<Duplex>;

/**
 * One host↔guest control connection, multiplexing requests by id. On any
 * protocol violation in either direction the connection is dropped, every
 * in-flight request fails with `guest_protocol`, and the channel reconnects
 * and re-handshakes (the guest discards its half of the stream on hang-up).
 * Emits `lost` (SandboxError) when it cannot get the guest back.
 */
export class GuestChannel extends EventEmitter {
  private sock: Duplex | undefined;
  private splitter = new FrameSplitter();
  private pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  private resetting: Promise<void> | undefined;
  /** A handshake loop is running; it retries by itself, so a drop must not start another. */
  private handshaking = false;
  private helloNonce: Buffer | undefined;
  private onReady: (() => void) | undefined;
  private net: NetHandler | undefined;
  /** Number of resets after protocol violations, for inspection and tests. */
  resets = 0;

  constructor(private readonly connect: Connector) {
    super();
  }

  /** Connect and wait for READY, resending HELLO until the guest answers or the deadline passes. */
  async handshake(deadline: number): Promise<void> {
    this.handshaking = true;
    try {
      await this.handshakeLoop(deadline);
    } finally {
      this.handshaking = false;
    }
  }

  private async handshakeLoop(deadline: number): Promise<void> {
    for (;;) {
      if (this.closed) throw new SandboxError('guest_lost', 'channel closed');
      try {
        await this.attach();
        // Bounded attempts: if the guest missed our hang-up it may still be inside a half-read
        // frame and swallow HELLOs; dropping the connection again makes it start clean.
        await this.awaitReady(Math.min(deadline, Date.now() + ATTEMPT_MS));
        return;
      } catch (e) {
        this.detach();
        if (Date.now() >= deadline) {
          throw e instanceof SandboxError
            ? e
            : new SandboxError('boot_timeout', `guest control channel: ${(e as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, HANGUP_GRACE_MS));
      }
    }
  }

  private async attach(): Promise<void> {
    const sock = await this.connect();
    this.sock = sock;
    this.splitter = new FrameSplitter();
    this.pausedBy = 0;
    sock.on('data', (d: Buffer) => this.onData(sock, d));
    sock.on('error', () => {});
    sock.on('close', () => {
      if (this.sock === sock && !this.closed)
        this.onBroken(new SandboxError('guest_lost', 'control channel closed by the VM'));
    });
  }

  private detach(): void {
    const s = this.sock;
    this.sock = undefined;
    s?.destroy();
  }

  private awaitReady(deadline: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const nonce = randomBytes(16);
      this.helloNonce = nonce;
      const send = () => this.sock?.write(encode.hello(nonce));
      // HELLO may land before the guest opens its port; resend until READY.
      const timer = setInterval(send, 250);
      const stop = setTimeout(
        () => done(new SandboxError('boot_timeout', 'guest did not answer HELLO in time')),
        Math.max(0, deadline - Date.now()),
      );
      const done = (e?: Error) => {
        clearInterval(timer);
        clearTimeout(stop);
        this.onReady = undefined;
        this.off('broken', done);
        e ? reject(e) : resolve();
      };
      this.onReady = () => done();
      this.once('broken', done);
      send();
    });
  }

  private onData(sock: Duplex, d: Buffer): void {
    if (sock !== this.sock) return;
    let frames: { type: number; id: number; payload: Buffer }[];
    try {
      frames = this.splitter.push(d);
    } catch (e) {
      this.violation((e as Error).message);
      return;
    }
    for (const raw of frames) {
      let f: GuestFrame;
      try {
        f = decodeGuestFrame(raw.type, raw.id, raw.payload);
      } catch (e) {
        this.violation((e as Error).message);
        return;
      }
      if (f.kind === 'ready') {
        if (this.helloNonce && f.nonce.equals(this.helloNonce) && f.version === PROTOCOL_VERSION) this.onReady?.();
        continue;
      }
      if (f.kind === 'net_open' || f.kind === 'net_data' || f.kind === 'net_close' || f.kind === 'net_ack') {
        this.onNetFrame(f);
        continue;
      }
      if (f.kind === 'error' && f.id === 0) {
        this.violation(`guest rejected our stream: ${f.message}`);
        return;
      }
      const p = this.pending.get(f.id);
      if (!p) continue; // a late frame for a request we already gave up on
      if (p.onFrame(f)) this.pending.delete(f.id);
    }
  }

  private onNetFrame(f: Extract<GuestFrame, { kind: 'net_open' | 'net_data' | 'net_close' | 'net_ack' }>): void {
    const h = this.net;
    if (!h) {
      // No egress here (or it was not restored after a daemon restart): refuse the stream.
      if (f.kind === 'net_open') void this.send(encode.netClose(f.id)).catch(() => {});
      return;
    }
    if (f.kind === 'net_open') h.onOpen(f.id);
    else if (f.kind === 'net_data') h.onData(f.id, f.data);
    else if (f.kind === 'net_ack') h.onAck(f.id, f.bytes);
    else h.onClose(f.id);
  }

  /** Route egress stream frames to `h` (one handler per channel). */
  setNetHandler(h: NetHandler | undefined): void {
    this.net = h;
  }

  /** Send bytes on an egress stream (the caller keeps within the window); resolves when written. */
  netData(stream: number, data: Buffer): Promise<void> {
    return this.send(encode.netData(stream, data));
  }

  netClose(stream: number): void {
    void this.send(encode.netClose(stream)).catch(() => {});
  }

  netAck(stream: number, bytes: number): void {
    void this.send(encode.netAck(stream, bytes)).catch(() => {});
  }

  /** Ask the guest to bring up lo and listen on 127.0.0.1:port for egress streams. */
  netListen(port: number, timeoutMs = 10_000): Promise<void> {
    const id = this.id();
    return new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new SandboxError('guest_lost', `guest did not answer the egress listen request within ${timeoutMs} ms`));
      }, timeoutMs);
      this.register(id, {
        onFrame: (f) => {
          clearTimeout(t);
          if (f.kind === 'ok') resolve();
          else if (f.kind === 'error') reject(new SandboxError('guest_error', `guest egress endpoint: ${f.message}`));
          else reject(new SandboxError('guest_protocol', `unexpected ${f.kind} frame answering a listen request`));
          return true;
        },
        fail: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.send(encode.netListen(id, port)).catch((e: unknown) => {
        clearTimeout(t);
        this.pending.delete(id);
        reject(e);
      });
    });
  }

  /** A frame broke the protocol: drop the stream, fail in-flight work, reconnect. */
  private violation(why: string): void {
    this.onBroken(new SandboxError('guest_protocol', `guest channel reset: ${why}`));
  }

  private onBroken(err: SandboxError): void {
    this.detach();
    this.emit('broken', err);
    // The guest drops its half of every egress stream on hang-up: drop ours too.
    this.net?.onReset();
    const pend = [...this.pending.values()];
    this.pending.clear();
    for (const p of pend) p.fail(err);
    if (this.closed || this.resetting || this.handshaking) return;
    this.resets++;
    // Give the guest time to see the hang-up (it drops its half of the stream then) before reconnecting.
    this.resetting = new Promise((r) => setTimeout(r, HANGUP_GRACE_MS))
      .then(() => this.handshake(Date.now() + 10_000))
      .catch((e: unknown) => {
        this.emit('lost', e instanceof SandboxError ? e : new SandboxError('guest_lost', String(e)));
      })
      .finally(() => {
        this.resetting = undefined;
      });
  }

  /** True while the channel is reconnecting after a violation. */
  get resettingNow(): boolean {
    return this.resetting !== undefined;
  }

  /** Wait for a reset in progress, if any. */
  async settled(): Promise<void> {
    await this.resetting;
  }

  private pausedBy = 0;

  /**
   * Stop reading from the guest until {@link resumeInput}: a slow HTTP client
   * downloading a file back-pressures the guest instead of growing our memory.
   * (Per sandbox: only this guest's traffic waits.)
   */
  pauseInput(): void {
    if (this.pausedBy++ === 0) this.sock?.pause();
  }

  resumeInput(): void {
    if (this.pausedBy > 0 && --this.pausedBy === 0) this.sock?.resume();
  }

  /** True while a reader has paused the input. */
  get inputPaused(): boolean {
    return this.pausedBy > 0;
  }

  /** Write raw bytes to the guest: only for fault-injection tests. */
  writeRawForTest(data: Buffer): void {
    this.sock?.write(data);
  }

  /** Drop the connection as if it broke mid-frame: only for fault-injection tests. */
  breakForTest(): void {
    this.violation('broken by a test');
  }

  private send(buf: Buffer): Promise<void> {
    const s = this.sock;
    if (!s || this.resetting)
      return Promise.reject(new SandboxError('guest_lost', 'guest control channel is not connected'));
    return new Promise((resolve) => {
      if (s.write(buf)) resolve();
      else s.once('drain', resolve);
    });
  }

  private id(): number {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xfffffff0 ? 1 : this.nextId + 1;
    return id;
  }

  private register(id: number, p: Pending): void {
    this.pending.set(id, p);
  }

  /** Round-trip a PING; resolves with the milliseconds it took. */
  ping(timeoutMs: number): Promise<number> {
    const id = this.id();
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new SandboxError('guest_lost', `guest did not answer a ping within ${timeoutMs} ms`));
      }, timeoutMs);
      this.register(id, {
        onFrame: (f) => {
          clearTimeout(t);
          if (f.kind === 'pong') resolve(performance.now() - started);
          else reject(new SandboxError('guest_protocol', `unexpected ${f.kind} answering ping`));
          return true;
        },
        fail: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.send(encode.ping(id, Buffer.from('airlock'))).catch((e: unknown) => {
        clearTimeout(t);
        this.pending.delete(id);
        reject(e);
      });
    });
  }

  /** Start a process in the guest. */
  exec(spec: ExecFrameSpec, h: ExecHandlers = {}): GuestProcess {
    const id = this.id();
    let resolveDone!: (x: ExitInfo) => void;
    let rejectDone!: (e: SandboxError) => void;
    const done = new Promise<ExitInfo>((res, rej) => {
      resolveDone = res;
      rejectDone = rej;
    });
    done.catch(() => {}); // callers may only look at it later
    this.register(id, {
      onFrame: (f) => {
        switch (f.kind) {
          case 'started':
            h.onStarted?.(f.pid);
            return false;
          case 'stdout':
            h.onStdout?.(f.data);
            return false;
          case 'stderr':
            h.onStderr?.(f.data);
            return false;
          case 'exit':
            resolveDone(f);
            return true;
          case 'error':
            if (f.code === GUEST_ERROR.LIMIT && f.message.includes('stdin')) return false; // stdin dropped; process goes on
            rejectDone(new SandboxError('guest_error', `guest could not run the process: ${f.message}`));
            return true;
          default:
            rejectDone(new SandboxError('guest_protocol', `unexpected ${f.kind} frame for a process`));
            return true;
        }
      },
      fail: (e) => rejectDone(e),
    });
    this.send(encode.exec(id, spec)).catch((e: unknown) => {
      this.pending.delete(id);
      rejectDone(e instanceof SandboxError ? e : new SandboxError('guest_lost', String(e)));
    });
    return {
      id,
      done,
      writeStdin: async (data: Buffer) => {
        for (let o = 0; o < data.length; o += CHUNK) await this.send(encode.stdin(id, data.subarray(o, o + CHUNK)));
      },
      closeStdin: () => void this.send(encode.stdin(id, Buffer.alloc(0))).catch(() => {}),
      signal: (signo: number) => void this.send(encode.signal(id, signo)).catch(() => {}),
    };
  }

  /** Upload a file: streams the chunks, resolves once the guest has renamed it into place. */
  async putFile(path: string, mode: number, source: AsyncIterable<Buffer>): Promise<number> {
    const id = this.id();
    let size = 0;
    let failure: SandboxError | undefined;
    const result = new Promise<void>((resolve, reject) => {
      this.register(id, {
        onFrame: (f) => {
          if (f.kind === 'ok') resolve();
          else if (f.kind === 'error') reject(new SandboxError('guest_error', f.message));
          else reject(new SandboxError('guest_protocol', `unexpected ${f.kind} frame for an upload`));
          return true;
        },
        fail: (e) => {
          failure = e;
          reject(e);
        },
      });
    });
    result.catch(() => {});
    await this.send(encode.putBegin(id, path, mode));
    for await (const chunk of source) {
      if (failure) break;
      for (let o = 0; o < chunk.length; o += CHUNK) await this.send(encode.putData(id, chunk.subarray(o, o + CHUNK)));
      size += chunk.length;
    }
    if (!failure) await this.send(encode.putEnd(id));
    await result;
    return size;
  }

  /**
   * Download a file: `onData` gets each chunk as it arrives (the caller
   * streams it on). Resolves with the size; rejects with `file_not_found`
   * or a channel error.
   */
  getFile(path: string, onData: (chunk: Buffer) => void): Promise<number> {
    const id = this.id();
    return new Promise<number>((resolve, reject) => {
      this.register(id, {
        onFrame: (f) => {
          if (f.kind === 'file_data') {
            onData(f.data);
            return false;
          }
          if (f.kind === 'file_end') resolve(f.size);
          else if (f.kind === 'error')
            reject(new SandboxError(f.code === GUEST_ERROR.IO ? 'file_not_found' : 'guest_error', f.message));
          else reject(new SandboxError('guest_protocol', `unexpected ${f.kind} frame for a download`));
          return true;
        },
        fail: reject,
      });
      this.send(encode.get(id, path)).catch((e: unknown) => {
        this.pending.delete(id);
        reject(e);
      });
    });
  }

  /**
   * Hand the guest its per-sandbox settings (process limit, writable-layer
   * size, wall clock, fresh entropy). Rejects with `guest_error` naming what failed.
   */
  configure(spec: ConfigFrameSpec, timeoutMs = 10_000): Promise<void> {
    const id = this.id();
    return new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new SandboxError('guest_lost', `guest did not answer its configuration within ${timeoutMs} ms`));
      }, timeoutMs);
      this.register(id, {
        onFrame: (f) => {
          clearTimeout(t);
          if (f.kind === 'ok') resolve();
          else if (f.kind === 'error') reject(new SandboxError('guest_error', `guest configuration: ${f.message}`));
          else reject(new SandboxError('guest_protocol', `unexpected ${f.kind} frame answering a configuration`));
          return true;
        },
        fail: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.send(encode.config(id, spec)).catch((e: unknown) => {
        clearTimeout(t);
        this.pending.delete(id);
        reject(e);
      });
    });
  }

  /** Ask the guest to power off (best effort: the backend kills the VM anyway). */
  shutdown(): void {
    this.sock?.write(encode.shutdown());
  }

  /** Close for good; in-flight requests fail with `guest_lost`. */
  close(): void {
    this.closed = true;
    this.detach();
    this.net?.onReset();
    const pend = [...this.pending.values()];
    this.pending.clear();
    for (const p of pend) p.fail(new SandboxError('guest_lost', 'sandbox is shutting down'));
  }
}

export { ProtocolViolation };
