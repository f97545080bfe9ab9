import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { EffectiveLimits } from '@airlock/core';
import { LineSplitter } from './line-splitter.js';

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

/**
 * Run one process with an argv array and never a shell, in its own process group, streaming
 * its output line by line, enforcing the timeout (SIGTERM to the group, SIGKILL after a grace)
 * and the output cap (stop reading, SIGKILL the group, mark truncated).
 */
export function runProcess(plan: SpawnPlan, onLine: LineSink, signal?: AbortSignal): Promise<ProcessOutcome> {
  const osArgv = wrapperArgv(plan);
  const [file, ...args] = osArgv as [string, ...string[]];
  return new Promise((resolvePromise) => {
    let timedOut = false;
    let cancelled = false;
    let truncated = false;
    let outputBytes = 0;
    let settled = false;
    let killTimer: NodeJS.Timeout | undefined;

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
    const terminate = (): void => {
      killGroup('SIGTERM');
      killTimer ??= setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
    };

    const timer = setTimeout(() => {
      timedOut = true;
      terminate();
    }, plan.limits.timeout_s * 1000);

    const onAbort = (): void => {
      cancelled = true;
      terminate();
    };
    if (signal !== undefined) {
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }

    const splitters = {
      stdout: new LineSplitter(MAX_LINE_CHARS, (line, partial) => onLine('stdout', line, partial)),
      stderr: new LineSplitter(MAX_LINE_CHARS, (line, partial) => onLine('stderr', line, partial)),
    };
    const take = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
      // Nothing is delivered after the outcome is settled (late data from a lingering pipe).
      if (truncated || settled) return;
      const room = plan.limits.output_bytes - outputBytes;
      if (chunk.length > room) {
        truncated = true;
        if (room > 0) splitters[stream].push(chunk.subarray(0, room));
        outputBytes += Math.max(0, room);
        killGroup('SIGKILL');
        child.stdout?.destroy();
        child.stderr?.destroy();
        return;
      }
      outputBytes += chunk.length;
      splitters[stream].push(chunk);
    };
    child.stdout?.on('data', take('stdout'));
    child.stderr?.on('data', take('stderr'));

    const finish = (exitCode: number | null, sig: NodeJS.Signals | null, spawnError?: string): void => {
      if (settled) return;
      clearTimeout(timer);
      if (killTimer !== undefined) clearTimeout(killTimer);
      signal?.removeEventListener('abort', onAbort);
      // Whatever the action left behind in its group goes with it.
      killGroup('SIGKILL');
      splitters.stdout.end();
      splitters.stderr.end();
      settled = true;
      child.stdout?.destroy();
      child.stderr?.destroy();
      resolvePromise({
        exitCode,
        signal: sig,
        timedOut,
        cancelled,
        truncated,
        outputBytes,
        spawnError,
        osArgv,
      });
    };

    child.on('error', (e) => finish(null, null, e.message));
    child.on('exit', (code, sig) => {
      // A grandchild may hold the pipes open after the child exits; kill the group so
      // 'close' arrives, then settle.
      killGroup('SIGKILL');
      child.on('close', () => finish(code, sig));
      // If a descendant outside the group still holds a pipe, give up waiting after a while.
      setTimeout(() => finish(code, sig), 5000).unref();
    });
  });
}
