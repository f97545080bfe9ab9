import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { EffectiveLimits } from '@airlock/core';
import { LineSplitter } from './line-splitter.js';
import { RLIMIT_INDEX } from './spawner/frames.js';
import { DEFAULT_SPAWNER_PATH, type HelperHandle, SpawnHelper } from './spawner/helper.js';

/** Grace between SIGTERM and SIGKILL when a run times out or is cancelled. */
export const KILL_GRACE_MS = 2000;
/** Longest line streamed in one piece; longer lines are split. */
export const MAX_LINE_CHARS = 16 * 1024;

const SETPRIV = '/usr/bin/setpriv';
const PRLIMIT = '/usr/bin/prlimit';

/** Everything needed to start one process. `file` is absolute; nothing is looked up. */
export interface SpawnPlan {
  readonly file: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
  readonly limits: EffectiveLimits;
}

export interface ProcessOutcome {
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly timedOut: boolean;
  readonly cancelled: boolean;
  readonly truncated: boolean;
  readonly outputBytes: number;
  readonly spawnError: string | undefined;
  /** Set when the spawn helper was lost while the action ran (the action was killed with it). */
  readonly lostError?: string;
  /** The argv handed to the OS, wrappers included (for the record, never re-parsed). */
  readonly osArgv: readonly string[];
}

export type LineSink = (stream: 'stdout' | 'stderr', line: string, partial: boolean) => void;

/**
 * Build the wrapper chain. `setpriv --pdeathsig KILL` makes the child die with the runner
 * (Node cannot call prctl itself); `prlimit` applies declared rlimits. Both exec in place,
 * so the action keeps the pid we spawned and its process group.
 */
export function wrapperArgv(plan: SpawnPlan): string[] {
  const argv: string[] = [];
  if (existsSync(SETPRIV)) argv.push(SETPRIV, '--pdeathsig', 'KILL', '--');
  const rl: string[] = [];
  const l = plan.limits;
  if (l.cpu_s !== undefined) rl.push(`--cpu=${l.cpu_s}`);
  if (l.memory_bytes !== undefined) rl.push(`--as=${l.memory_bytes}`);
  if (l.max_procs !== undefined) rl.push(`--nproc=${l.max_procs}`);
  if (l.max_files !== undefined) rl.push(`--nofile=${l.max_files}`);
  if (rl.length > 0) {
    if (!existsSync(PRLIMIT)) throw new Error(`${PRLIMIT} is required to apply rlimits (install util-linux)`);
    argv.push(PRLIMIT, ...rl, '--');
  }
  argv.push(plan.file, ...plan.args);
  return argv;
}

export type SpawnBackend = 'helper' | 'exec';

export interface RunProcessOptions {
  readonly signal?: AbortSignal;
  /** Force a backend (tests); default: the helper when it is built, else exec. */
  readonly backend?: SpawnBackend;
}

let shared: SpawnHelper | undefined;

/**
 * The backend this process uses: `AIRLOCK_SPAWNER=exec` forces the setpriv/prlimit path,
 * `AIRLOCK_SPAWNER=/path/to/airlock-spawner` names a helper binary; by default the helper
 * built into dist/native is used when present.
 */
export function spawnBackend(): SpawnBackend {
  return spawnHelper() === undefined ? 'exec' : 'helper';
}

/** The one shared spawn helper of this process, or undefined when it is not available. */
export function spawnHelper(): SpawnHelper | undefined {
  const choice = process.env['AIRLOCK_SPAWNER'] ?? '';
  if (choice === 'exec') return undefined;
  const binary = choice.startsWith('/') ? choice : DEFAULT_SPAWNER_PATH;
  if (shared?.binary === binary) return shared;
  if (!SpawnHelper.available(binary)) return undefined;
  shared?.stop();
  shared = new SpawnHelper(binary);
  return shared;
}

/** How runProcess sees a started process, whichever backend started it. */
interface Launched {
  killGroup(sig: 'SIGTERM' | 'SIGKILL'): void;
  /** Output cap: kill the group and stop reading its pipes. */
  killAndStopReading(): void;
}

interface LaunchEvents {
  data(stream: 'stdout' | 'stderr', chunk: Buffer): void;
  /** Exactly once, after the output is drained (or given up on). */
  done(exitCode: number | null, signal: NodeJS.Signals | null, spawnError?: string, lostError?: string): void;
}

const RLIMIT_FIELDS = ['cpu_s', 'memory_bytes', 'max_procs', 'max_files'] as const;

/** Through the spawn helper: it forks, sets pdeathsig, rlimits and the group, and execs. */
function launchHelper(helper: SpawnHelper, plan: SpawnPlan, ev: LaunchEvents): Launched {
  let over = false;
  const rlimits = RLIMIT_FIELDS.flatMap((k) => {
    const v = plan.limits[k];
    return v === undefined ? [] : [{ resource: RLIMIT_INDEX[k], value: BigInt(v) }];
  });
  const handle: HelperHandle = helper.spawn(
    {
      file: plan.file,
      argv: [plan.file, ...plan.args],
      env: Object.entries(plan.env).map(([k, v]) => `${k}=${v}`),
      cwd: plan.cwd,
      rlimits,
    },
    {
      onStarted: () => {},
      onData: (stream, chunk) => ev.data(stream, chunk),
      onExit: (code, sig) => {
        over = true;
        ev.done(code, sig);
      },
      onFailed: (message, started) => {
        over = true;
        if (started) ev.done(null, 'SIGKILL', undefined, message);
        else ev.done(null, null, message);
      },
    },
  );
  return {
    killGroup: (sig) => {
      if (!over) handle.kill(sig);
    },
    killAndStopReading: () => {
      if (!over) handle.kill('SIGKILL', true);
    },
  };
}

/** Through child_process with the setpriv/prlimit wrapper chain (no helper built). */
function launchExec(plan: SpawnPlan, osArgv: readonly string[], ev: LaunchEvents): Launched {
  const [file, ...args] = osArgv as [string, ...string[]];
  let over = false;
  const child = spawn(file, args, {
    shell: false,
    detached: true, // own process group, so a kill reaches grandchildren too
    cwd: plan.cwd,
    env: { ...plan.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    windowsHide: true,
  });
  const killGroup = (sig: NodeJS.Signals): void => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, sig);
    } catch {
      // ESRCH: the group is already gone
    }
  };
  child.stdout?.on('data', (c: Buffer) => ev.data('stdout', c));
  child.stderr?.on('data', (c: Buffer) => ev.data('stderr', c));
  const done = (code: number | null, sig: NodeJS.Signals | null, spawnError?: string): void => {
    if (over) return;
    over = true;
    // Whatever the action left behind in its group goes with it.
    killGroup('SIGKILL');
    child.stdout?.destroy();
    child.stderr?.destroy();
    ev.done(code, sig, spawnError);
  };
  child.on('error', (e) => done(null, null, e.message));
  child.on('exit', (code, sig) => {
    // A grandchild may hold the pipes open after the child exits; kill the group so
    // 'close' arrives, then settle.
    killGroup('SIGKILL');
    child.on('close', () => done(code, sig));
    // If a descendant outside the group still holds a pipe, give up waiting after a while.
    setTimeout(() => done(code, sig), 5000).unref();
  });
  return {
    killGroup,
    killAndStopReading: () => {
      killGroup('SIGKILL');
      child.stdout?.destroy();
      child.stderr?.destroy();
    },
  };
}

/**
 * Run one process with an argv array and never a shell, in its own process group, streaming
 * its output line by line, enforcing the timeout (SIGTERM to the group, SIGKILL after a grace)
 * and the output cap (stop reading, SIGKILL the group, mark truncated).
 */
export function runProcess(plan: SpawnPlan, onLine: LineSink, opts: RunProcessOptions = {}): Promise<ProcessOutcome> {
  const signal = opts.signal;
  const helper = opts.backend === 'exec' ? undefined : spawnHelper();
  if (opts.backend === 'helper' && helper === undefined)
    throw new Error('the spawn helper is not built (node packages/runner/native/build.mjs)');
  const osArgv = helper === undefined ? wrapperArgv(plan) : [plan.file, ...plan.args];
  return new Promise((resolvePromise) => {
    let timedOut = false;
    let cancelled = false;
    let truncated = false;
    let outputBytes = 0;
    let settled = false;
    let killTimer: NodeJS.Timeout | undefined;
    let launched: Launched | undefined;

    const splitters = {
      stdout: new LineSplitter(MAX_LINE_CHARS, (line, partial) => onLine('stdout', line, partial)),
      stderr: new LineSplitter(MAX_LINE_CHARS, (line, partial) => onLine('stderr', line, partial)),
    };
    const events: LaunchEvents = {
      data: (stream, chunk) => {
        // Nothing is delivered after the outcome is settled (late data from a lingering pipe).
        if (truncated || settled) return;
        const room = plan.limits.output_bytes - outputBytes;
        if (chunk.length > room) {
          truncated = true;
          if (room > 0) splitters[stream].push(chunk.subarray(0, room));
          outputBytes += Math.max(0, room);
          launched?.killAndStopReading();
          return;
        }
        outputBytes += chunk.length;
        splitters[stream].push(chunk);
      },
      done: (exitCode, sig, spawnError, lostError) => {
        if (settled) return;
        clearTimeout(timer);
        if (killTimer !== undefined) clearTimeout(killTimer);
        signal?.removeEventListener('abort', onAbort);
        splitters.stdout.end();
        splitters.stderr.end();
        settled = true;
        resolvePromise({
          exitCode,
          signal: sig,
          timedOut,
          cancelled,
          truncated,
          outputBytes,
          spawnError,
          ...(lostError === undefined ? {} : { lostError }),
          osArgv,
        });
      },
    };

    const terminate = (): void => {
      launched?.killGroup('SIGTERM');
      killTimer ??= setTimeout(() => launched?.killGroup('SIGKILL'), KILL_GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      terminate();
    }, plan.limits.timeout_s * 1000);
    const onAbort = (): void => {
      cancelled = true;
      terminate();
    };

    launched = helper === undefined ? launchExec(plan, osArgv, events) : launchHelper(helper, plan, events);
    if (signal !== undefined && !settled) {
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
  });
}
