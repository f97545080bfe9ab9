// Shared helpers of the catalog acceptance tests: where the real packs live, running
// one action through the engine and collecting its output, free loopback ports, and
// checks that the Debian binaries the service tests need are installed.
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OutputLine, RunResult } from '../engine.js';
import { findBinary } from '../binary.js';
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

/** A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close). */
export async function freePort(): Promise<number> {
  return await new Promise<number>((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('no port'));
        return;
      }
      const port = addr.port;
      srv.close(() => resolvePort(port));
    });
  });
}

/**
 * Throw a clear error when a binary the test depends on is missing: these tests must
 * not silently pass on a machine without the services (scripts/system-deps.mjs installs them).
 */
export function requireBinaries(what: string, bins: readonly string[]): void {
  const missing = bins.filter((b) => (b.startsWith('/') ? !existsSync(b) : findBinary(b, DEFAULT_ACTION_PATH) === undefined));
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
