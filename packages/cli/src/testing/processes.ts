// Test support: real `airlock` processes (server, runners) with their output captured.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(fileURLToPath(import.meta.url), '../../../../..');
export const airlockBin = join(repoRoot, 'packages', 'cli', 'bin', 'airlock.js');

/** A child `airlock` process and everything it printed. */
export interface AirlockProcess {
  readonly child: ChildProcess;
  output(): string;
  waitFor(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function spawnAirlock(args: string[], env: Record<string, string>): AirlockProcess {
  const child = spawn(process.execPath, [airlockBin, ...args], {
    cwd: repoRoot,
    env: { ...process.env, AIRLOCK_RUNNER_CONFIG: '', AIRLOCK_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  return {
    child,
    output: () => out,
    async waitFor(re, ms = 20_000) {
      const end = Date.now() + ms;
      for (;;) {
        const m = out.match(re);
        if (m !== null) return m;
        if (child.exitCode !== null || Date.now() > end) {
          throw new Error(
            `waited for ${re} ${child.exitCode !== null ? `(process exited ${child.exitCode})` : '(timed out)'}; output:\n${out}`,
          );
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    kill(signal = 'SIGTERM') {
      return new Promise((r) => {
        if (child.exitCode !== null || child.signalCode !== null) return r();
        child.once('exit', () => r());
        child.kill(signal);
      });
    },
  };
}

/** A free loopback TCP port. */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => res(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

export async function until<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  ms = 20_000,
  what = 'condition',
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
