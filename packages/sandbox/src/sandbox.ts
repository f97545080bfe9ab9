import { StringDecoder } from 'node:string_decoder';
import type { VmHandle } from './backends/types.js';
import type { EgressSession } from './egress/session.js';
import { SandboxError } from './errors.js';
import type { ExitInfo, GuestChannel, GuestProcess } from './guest/channel.js';

/** Lifecycle of a sandbox. `failed` keeps the record (for inspection) after its VM was freed. */
export type SandboxState = 'starting' | 'running' | 'failed' | 'stopping' | 'deleted';

/** Resource limits of one sandbox, as reported by the API (see limits.ts for who enforces each). */
export interface SandboxLimits {
  readonly memory_mb: number;
  readonly vcpus: number;
  readonly rw_mb: number;
  readonly lifetime_s: number | null;
  /** Timeout of an exec that names none. */
  readonly exec_timeout_ms: number;
  /** Output cap of an exec that names none. */
  readonly max_output_bytes: number;
  /** Guest processes and threads at once (guest cgroup pids.max); absent in records of older daemons. */
  readonly max_procs?: number | undefined;
  /** Largest `timeout_ms` an exec may ask for. */
  readonly max_exec_timeout_ms?: number | undefined;
  /** Largest `max_output_bytes` an exec may ask for. */
  readonly max_exec_output_bytes?: number | undefined;
}

/** An exec request after validation (see http/schemas.ts). */
export interface ExecRequest {
  readonly code?: string | undefined;
  readonly argv?: readonly string[] | undefined;
  readonly timeout_ms?: number | undefined;
  readonly stdin?: string | undefined;
  readonly env?: Readonly<Record<string, string>> | undefined;
  readonly cwd?: string | undefined;
  readonly max_output_bytes?: number | undefined;
}

/** The outcome of a foreground exec (the emberd fields plus `timed_out`, `truncated`, `signal`). */
export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exit_code: number;
  readonly signal: number | null;
  readonly duration_ms: number;
  readonly timed_out: boolean;
  readonly truncated: boolean;
}

/** One NDJSON event of a streamed exec or a re-attached background process. */
export type ExecEvent =
  | { readonly type: 'started'; readonly pid: number }
  | { readonly type: 'stdout' | 'stderr'; readonly data: string }
  | ({ readonly type: 'exit' } & Omit<ExecResult, 'stdout' | 'stderr'>)
  | { readonly type: 'error'; readonly error: { readonly code: string; readonly message: string } };

/** Largest `code` passed as an argv element; longer code goes through a file (Linux caps one argument at 128 KiB). */
const MAX_INLINE_CODE = 96 * 1024;
/** Output kept for a background process that nobody is attached to. */
const BACKGROUND_BUFFER = 1 << 20;

const BASE_ENV: Readonly<Record<string, string>> = {
  PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin',
  HOME: '/root',
  LANG: 'C.UTF-8',
  PYTHONUNBUFFERED: '1', // so streamed output arrives as it is printed
};

function exitResult(x: ExitInfo): Omit<ExecResult, 'stdout' | 'stderr'> {
  return {
    // A signalled process reports 128+N like a shell, and the signal separately.
    exit_code: x.exitCode >= 0 ? x.exitCode : 128 + x.signal,
    signal: x.signal > 0 ? x.signal : null,
    duration_ms: x.durationMs,
    timed_out: x.timedOut,
    truncated: x.truncated,
  };
}

/** A process started with `background: true`: its output is buffered until someone re-attaches. */
export class BackgroundProcess {
  readonly startedAt = new Date();
  pid: number | null = null;
  exit: Omit<ExecResult, 'stdout' | 'stderr'> | null = null;
  error: SandboxError | null = null;
  private events: ExecEvent[] = [];
  private bytes = 0;
  /** Bytes of output dropped because nobody read them and the buffer was full. */
  dropped = 0;
  private listeners = new Set<(e: ExecEvent) => void>();

  constructor(
    readonly id: string,
    readonly proc: GuestProcess,
  ) {}

  /** Record an event and hand it to attached listeners. */
  push(e: ExecEvent): void {
    if (e.type === 'stdout' || e.type === 'stderr') {
      this.bytes += e.data.length;
      while (this.bytes > BACKGROUND_BUFFER && this.events.length > 0) {
        const old = this.events.shift();
        if (old && (old.type === 'stdout' || old.type === 'stderr')) {
          this.bytes -= old.data.length;
          this.dropped += old.data.length;
        }
      }
    }
    this.events.push(e);
    for (const l of this.listeners) l(e);
  }

  /** Replay the buffered events, then follow live ones until the process ends. Returns an unsubscribe. */
  attach(l: (e: ExecEvent) => void): () => void {
    for (const e of this.events) l(e);
    if (this.exit || this.error) return () => {};
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  get running(): boolean {
    return this.exit === null && this.error === null;
  }

  /** What the API shows for this process. */
  describe(): Record<string, unknown> {
    return {
      id: this.id,
      pid: this.pid,
      state: this.running ? 'running' : this.error ? 'failed' : 'exited',
      started_at: this.startedAt.toISOString(),
      ...(this.exit ?? {}),
      ...(this.error ? { error: this.error.toBody().error } : {}),
      dropped_bytes: this.dropped,
    };
  }
}

/** One sandbox: a VM, its guest channel, and what runs in it. */
export class Sandbox {
  state: SandboxState = 'starting';
  failure: string | null = null;
  readyAt: Date | null = null;
  bootMs: number | null = null;
  readonly processes = new Map<string, BackgroundProcess>();
  private seq = 0;
  /** Foreground processes, so a delete or client disconnect can kill them. */
  readonly foreground = new Set<GuestProcess>();
  /** Booted ahead of demand by the warm pool. */
  warm = false;
  /** Started from a saved VM state instead of a boot. */
  restored = false;
  /** Its egress (proxy session, policy, log) when the create asked for it; none by default. */
  egress: EgressSession | undefined;

  constructor(
    readonly id: string,
    readonly pack: string,
    readonly run: readonly string[],
    public limits: SandboxLimits,
    /** Environment for every exec; set when a pre-booted sandbox is handed out. */
    public env: Readonly<Record<string, string>>,
    readonly vm: VmHandle,
    readonly channel: GuestChannel,
    readonly backend: { readonly name: string; readonly isolation: string; readonly kvm: boolean },
    readonly createdAt: Date = new Date(),
  ) {}

  private assertRunning(): void {
    if (this.state !== 'running') {
      throw new SandboxError(
        'sandbox_not_running',
        `sandbox ${this.id} is ${this.state}${this.failure ? `: ${this.failure}` : ''}`,
      );
    }
  }

  /** An exec may lower the sandbox's timeout and output cap, never raise them past its limits. */
  private checkExecLimits(req: ExecRequest): void {
    const t = this.limits.max_exec_timeout_ms;
    if (req.timeout_ms !== undefined && t !== undefined && req.timeout_ms > t)
      throw new SandboxError(
        'invalid_request',
        `timeout_ms: ${req.timeout_ms} is above this sandbox's limit of ${t} ms (exec_timeout_ms at create)`,
      );
    const o = this.limits.max_exec_output_bytes;
    if (req.max_output_bytes !== undefined && o !== undefined && req.max_output_bytes > o)
      throw new SandboxError(
        'invalid_request',
        `max_output_bytes: ${req.max_output_bytes} is above this sandbox's limit of ${o} (max_output_bytes at create)`,
      );
  }

  private async argvFor(req: ExecRequest): Promise<string[]> {
    this.checkExecLimits(req);
    if (req.argv) return [...req.argv];
    const code = req.code ?? '';
    if (Buffer.byteLength(code) <= MAX_INLINE_CODE) return [...this.run, code];
    // Too long for one argument: hand the interpreter a file instead of `-c CODE`.
    const path = `/tmp/.airlock/code-${++this.seq}`;
    await this.channel.putFile(
      path,
      0o600,
      (async function* () {
        yield Buffer.from(code, 'utf8');
      })(),
    );
    return [...this.run.slice(0, -1), path];
  }

  private start(
    req: ExecRequest,
    sink: (e: ExecEvent) => void,
    argv: string[],
  ): { proc: GuestProcess; clipped: () => boolean } {
    const env = { ...BASE_ENV, ...this.env, ...(req.env ?? {}) };
    const out = new StringDecoder('utf8');
    const err = new StringDecoder('utf8');
    const limit = req.max_output_bytes ?? this.limits.max_output_bytes;
    // The guest enforces the output cap; the host enforces it again, because a guest
    // whose kernel was subverted need not (the guest is not trusted with host memory).
    let budget = limit;
    let clipped = false;
    const clip = (d: Buffer): Buffer => {
      if (d.length <= budget) {
        budget -= d.length;
        return d;
      }
      clipped = true;
      const kept = d.subarray(0, budget);
      budget = 0;
      return kept;
    };
    const proc = this.channel.exec(
      {
        argv,
        env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
        cwd: req.cwd ?? '/root',
        timeoutMs: req.timeout_ms ?? this.limits.exec_timeout_ms,
        outputLimit: limit,
        stdin: req.stdin !== undefined,
      },
      {
        onStarted: (pid) => sink({ type: 'started', pid }),
        onStdout: (d) => {
          const s = out.write(clip(d));
          if (s) sink({ type: 'stdout', data: s });
        },
        onStderr: (d) => {
          const s = err.write(clip(d));
          if (s) sink({ type: 'stderr', data: s });
        },
      },
    );
    if (req.stdin !== undefined) {
      void proc
        .writeStdin(Buffer.from(req.stdin, 'utf8'))
        .then(() => proc.closeStdin())
        .catch(() => {});
    }
    void proc.done.then(
      () => {
        const o = out.end();
        const e = err.end();
        if (o) sink({ type: 'stdout', data: o });
        if (e) sink({ type: 'stderr', data: e });
      },
      () => {},
    );
    return { proc, clipped: () => clipped };
  }

  /**
   * Run to completion. `onEvent` receives output as it arrives (streaming);
   * `abort` kills the guest process tree (client went away).
   */
  async exec(req: ExecRequest, onEvent?: (e: ExecEvent) => void, abort?: AbortSignal): Promise<ExecResult> {
    this.assertRunning();
    const argv = await this.argvFor(req);
    const stdout: string[] = [];
    const stderr: string[] = [];
    const { proc, clipped } = this.start(
      req,
      (e) => {
        if (e.type === 'stdout') stdout.push(e.data);
        else if (e.type === 'stderr') stderr.push(e.data);
        onEvent?.(e);
      },
      argv,
    );
    this.foreground.add(proc);
    const onAbort = () => proc.signal(9);
    abort?.addEventListener('abort', onAbort);
    try {
      const x = await proc.done;
      await new Promise((r) => setImmediate(r)); // let the decoders' final flush land
      const r = exitResult(x);
      return { stdout: stdout.join(''), stderr: stderr.join(''), ...r, truncated: r.truncated || clipped() };
    } finally {
      abort?.removeEventListener('abort', onAbort);
      this.foreground.delete(proc);
    }
  }

  /** Start a process that outlives the request; its output can be re-attached later. */
  async startBackground(req: ExecRequest): Promise<BackgroundProcess> {
    this.assertRunning();
    const argv = await this.argvFor(req);
    let bp: BackgroundProcess | undefined;
    const early: ExecEvent[] = [];
    const { proc, clipped } = this.start(req, (e) => (bp ? bp.push(e) : early.push(e)), argv);
    bp = new BackgroundProcess(`proc_${++this.seq}`, proc);
    for (const e of early) bp.push(e);
    const b = bp;
    b.attach((e) => {
      if (e.type === 'started') b.pid = e.pid;
    });
    proc.done.then(
      (x) =>
        setImmediate(() => {
          const r = exitResult(x);
          b.exit = { ...r, truncated: r.truncated || clipped() };
          b.push({ type: 'exit', ...b.exit });
        }),
      (e: unknown) => {
        b.error = e instanceof SandboxError ? e : new SandboxError('guest_lost', String(e));
        b.push({ type: 'error', error: b.error.toBody().error });
      },
    );
    this.processes.set(b.id, b);
    // Keep the table bounded: forget the oldest finished processes.
    if (this.processes.size > 256) {
      for (const [k, v] of this.processes) {
        if (!v.running) {
          this.processes.delete(k);
          if (this.processes.size <= 256) break;
        }
      }
    }
    return b;
  }

  /** Upload a file (streamed). */
  async putFile(path: string, mode: number, source: AsyncIterable<Buffer>): Promise<number> {
    this.assertRunning();
    return this.channel.putFile(path, mode, source);
  }

  /** Download a file; `onData` receives chunks as they arrive. */
  async getFile(path: string, onData: (chunk: Buffer) => void): Promise<number> {
    this.assertRunning();
    return this.channel.getFile(path, onData);
  }

  /** What the API shows for this sandbox. */
  describe(): Record<string, unknown> {
    return {
      id: this.id,
      language_pack: this.pack,
      state: this.state,
      backend: this.backend.name,
      isolation: this.backend.isolation,
      kvm: this.backend.kvm,
      created_at: this.createdAt.toISOString(),
      uptime_s: this.readyAt ? Math.round((Date.now() - this.readyAt.getTime()) / 100) / 10 : 0,
      boot_ms: this.bootMs,
      warm: this.warm,
      restored: this.restored,
      limits: this.limits,
      vm_pid: this.vm.pid,
      processes: [...this.processes.values()].filter((p) => p.running).length,
      egress: this.egress ? this.egress.describe() : null,
      ...(this.failure ? { failure: this.failure } : {}),
    };
  }
}
