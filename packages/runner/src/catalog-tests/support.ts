// Shared helpers of the catalog acceptance tests: where the real packs live, running
// one action through the engine and collecting its output, free loopback ports, and
// checks that the Debian binaries the service tests need are installed.
import { type ChildProcess, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findBinary } from '../binary.js';
import type { OutputLine, RunResult } from '../engine.js';
import { DEFAULT_ACTION_PATH } from '../paths.js';
import type { TestRunner } from '../testing/fixture.js';

/** Repository root: dist/catalog-tests/x.js → packages/runner/dist → repository. */
export const repoRoot = resolve(fileURLToPath(import.meta.url), '../../../../..');
/** The action-pack catalog shipped in the repository. */
export const packsDir = join(repoRoot, 'packs');

export const principal = Object.freeze({ type: 'local', id: 'catalog-tests' });

/** The outcome of one run: the result and its redacted output by stream. */
export interface Ran {
  readonly res: RunResult;
  readonly lines: readonly OutputLine[];
  readonly stdout: string;
  readonly stderr: string;
  /** stdout and stderr interleaved in arrival order. */
  readonly all: string;
}

/** Run one action through the engine, collecting every output line. */
export async function runAction(
  r: TestRunner,
  action: string,
  args: Readonly<Record<string, unknown>> = {},
  limits?: Readonly<Record<string, unknown>>,
): Promise<Ran> {
  const lines: OutputLine[] = [];
  const res = await r.engine.run(
    { action, args, reason: 'catalog acceptance test', principal, ...(limits === undefined ? {} : { limits }) },
    { onOutput: (l) => lines.push(l) },
  );
  const join = (pick: (l: OutputLine) => boolean): string =>
    lines
      .filter(pick)
      .map((l) => l.line)
      .join('\n');
  return {
    res,
    lines,
    stdout: join((l) => l.stream === 'stdout'),
    stderr: join((l) => l.stream === 'stderr'),
    all: join(() => true),
  };
}

/** A readable summary of a run for assertion messages. */
export function describeRun(ran: Ran): string {
  const err = ran.res.error === null ? '' : ` error=${ran.res.error.code}: ${ran.res.error.message}`;
  const out = ran.all.length > 1500 ? `${ran.all.slice(0, 1500)}…` : ran.all;
  return `${ran.res.action}: status=${ran.res.status} exit=${String(ran.res.exitCode)}${err}\n--- output ---\n${out}`;
}

/**
 * Throw a clear error when a binary the test depends on is missing: these tests must
 * not silently pass on a machine without the services (scripts/system-deps.mjs installs them).
 */
export function requireBinaries(what: string, bins: readonly string[]): void {
  const missing = bins.filter((b) =>
    b.startsWith('/') ? !existsSync(b) : findBinary(b, DEFAULT_ACTION_PATH) === undefined,
  );
  if (missing.length > 0) {
    throw new Error(
      `${what}: required binaries missing: ${missing.join(', ')} (install the Debian packages with "node scripts/system-deps.mjs" as root)`,
    );
  }
}

/** Sleep. */
export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** True while `pid` exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Send `signal` to `pid`, wait up to `graceMs` for it to go, then SIGKILL. Never throws. */
export async function stopPid(
  pid: number | undefined,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 5000,
): Promise<void> {
  if (pid === undefined || pid <= 0 || !alive(pid)) return;
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  const end = Date.now() + graceMs;
  while (Date.now() < end) {
    if (!alive(pid)) return;
    await delay(50);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Stop a child we spawned (and wait for its exit event). Never throws. */
export async function stopChild(
  child: ChildProcess | undefined,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 5000,
): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await stopPid(child.pid, signal, graceMs);
  await Promise.race([exited, delay(2000)]);
}

/** Run a setup command synchronously; throws with its output on failure. */
export function sh(
  file: string,
  args: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {},
): string {
  try {
    return execFileSync(file, [...args], {
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: 30_000,
      ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
      ...(opts.env === undefined ? {} : { env: opts.env }),
      ...(opts.input === undefined ? {} : { input: opts.input }),
    });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${file} ${args.join(' ')} failed: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
  }
}

/** Poll `fn` until it returns true (errors count as false) or `timeoutMs` passes. */
export async function pollUntil(
  fn: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
  stepMs = 100,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      if (await fn()) return;
    } catch (e) {
      last = e;
    }
    await delay(stepMs);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? '' : `: ${(last as Error).message}`}`,
  );
}

/** Keep the last `max` characters a child wrote, for error messages. */
export function captureOutput(child: ChildProcess, max = 8192): () => string {
  let buf = '';
  const add = (d: Buffer): void => {
    buf = (buf + d.toString('utf8')).slice(-max);
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  return () => buf;
}
