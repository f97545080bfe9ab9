import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  encodeKill,
  encodeSpawn,
  FrameDecoder,
  type HelperFrame,
  SpawnerProtocolError,
  type SpawnRequest,
} from './frames.js';

/** Where the build puts the helper (packages/runner/native/build.mjs). */
export const DEFAULT_SPAWNER_PATH = fileURLToPath(new URL('../native/airlock-spawner', import.meta.url));

export interface HelperRun {
  readonly onStarted: (pid: number) => void;
  readonly onData: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  /** The action ended and all its output was relayed (or the helper gave up waiting for it). */
  readonly onExit: (exitCode: number | null, signal: NodeJS.Signals | null) => void;
  /** It never started (`started` false), or the helper was lost while it ran. */
  readonly onFailed: (message: string, started: boolean) => void;
}

export interface HelperHandle {
  kill(signal: 'SIGTERM' | 'SIGKILL', closeOutput?: boolean): void;
}

interface Pending {
  readonly run: HelperRun;
  started: boolean;
}

const errnoNames = new Map(Object.entries(osConstants.errno).map(([k, v]) => [v, k]));
const signalNames = new Map(Object.entries(osConstants.signals).map(([k, v]) => [v, k as NodeJS.Signals]));

/**
 * The runner's connection to its one spawn helper process. Started lazily on the first
 * action; if it dies it is started again for the next one. It never keeps the runner's
 * event loop alive by itself (an action in flight holds its own timer).
 */
export class SpawnHelper {
  private child: ChildProcess | undefined;
  private decoder = new FrameDecoder();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(readonly binary: string) {}

  /** True when the helper binary exists and is executable. */
  static available(binary: string): boolean {
    try {
      accessSync(binary, fsConstants.X_OK);
      return true;
    } catch {
      return false;
    }
  }

  /** The helper's pid (tests use it to kill the helper). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  spawn(req: Omit<SpawnRequest, 'id'>, run: HelperRun): HelperHandle {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffff_fffe ? 1 : this.nextId + 1;
    const frame = encodeSpawn({ ...req, id }); // throws on NUL bytes, like child_process.spawn
    const child = this.ensure();
    this.pending.set(id, { run, started: false });
    child.stdin?.write(frame);
    return {
      kill: (signal, closeOutput = false) => {
        if (!this.pending.has(id) || this.child !== child) return;
        child.stdin?.write(encodeKill(id, osConstants.signals[signal], closeOutput));
      },
    };
  }

  /** Stop the helper (it kills any action groups it still has). */
  stop(): void {
    const c = this.child;
    if (c === undefined) return;
    this.lose(c, 'spawn helper stopped');
    c.stdin?.end();
    c.kill('SIGTERM');
  }

  private ensure(): ChildProcess {
    if (this.child !== undefined) return this.child;
    const child = spawn(this.binary, [String(process.pid)], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {},
      shell: false,
    });
    this.child = child;
    this.decoder = new FrameDecoder();
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => {
      stderr = (stderr + c.toString()).slice(-2000);
    });
    child.stdout?.on('data', (chunk: Buffer) => {
      if (this.child !== child) return;
      let frames: HelperFrame[];
      try {
        frames = this.decoder.push(chunk);
      } catch (e) {
        const msg = e instanceof SpawnerProtocolError ? e.message : String(e);
        this.lose(child, `spawn helper sent a malformed frame (${msg})`);
        child.kill('SIGTERM');
        return;
      }
      for (const f of frames) this.onFrame(child, f);
    });
    child.stdin?.on('error', () => {
      // EPIPE after the helper died; its 'exit' handler reports the loss.
    });
    child.on('error', (e) => this.lose(child, `spawn helper: ${e.message}`));
    child.on('exit', (code, sig) =>
      this.lose(child, `spawn helper exited (${sig ?? `code ${code}`})${stderr === '' ? '' : `: ${stderr.trim()}`}`),
    );
    // An idle helper must not keep the runner (or a one-shot CLI) alive.
    child.unref();
    for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as { unref?: () => void })?.unref?.();
    return child;
  }

  private onFrame(child: ChildProcess, f: HelperFrame): void {
    const p = this.pending.get(f.id);
    if (p === undefined) {
      this.lose(child, `spawn helper sent a frame for unknown request ${f.id}`);
      child.kill('SIGTERM');
      return;
    }
    switch (f.type) {
      case 'started':
        if (p.started) {
          this.lose(child, `spawn helper started request ${f.id} twice`);
          child.kill('SIGTERM');
          return;
        }
        p.started = true;
        p.run.onStarted(f.pid);
        return;
      case 'stdout':
      case 'stderr':
        if (!p.started) {
          this.lose(child, `spawn helper sent output before start for request ${f.id}`);
          child.kill('SIGTERM');
          return;
        }
        p.run.onData(f.type, f.data);
        return;
      case 'exit':
        this.pending.delete(f.id);
        p.run.onExit(f.signalled ? null : f.value, f.signalled ? (signalNames.get(f.value) ?? 'SIGKILL') : null);
        return;
      case 'failed':
        this.pending.delete(f.id);
        p.run.onFailed(`${f.stage}: ${errnoNames.get(f.errno) ?? `errno ${f.errno}`}`, false);
        return;
    }
  }

  /** The helper is gone or untrustworthy: fail everything in flight and forget it. */
  private lose(child: ChildProcess, message: string): void {
    if (this.child !== child) return;
    this.child = undefined;
    const lost = [...this.pending.values()];
    this.pending.clear();
    for (const p of lost) p.run.onFailed(message, p.started);
  }
}
