// Test support: builds throwaway packs and runners in temp folders. Not part of the
// package's public surface (excluded from the published files).
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type Catalog, loadCatalog } from '../catalog.js';
import { defaultRunnerConfig, type RunnerConfig } from '../config.js';
import { ActionEngine } from '../engine.js';
import { SecurityLog } from '../security-log.js';

/** A temp folder removed by `cleanup()`. */
export function tempDir(prefix = 'airlock-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Write a pack folder from a map of relative path → text. Files under scripts/ are made executable. */
export function writePack(dir: string, files: Record<string, string>): string {
  for (const [rel, text] of Object.entries(files)) {
    const full = join(dir, rel);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, text);
    if (rel.startsWith('scripts/')) chmodSync(full, 0o755);
  }
  return dir;
}

export interface TestRunner {
  readonly root: string;
  readonly config: RunnerConfig;
  readonly catalog: Catalog;
  readonly engine: ActionEngine;
  readonly log: SecurityLog;
  cleanup(): void;
}

/** A runner over the given pack folders with a security log in a temp folder. */
export function testRunner(packDirs: string[], overrides: Partial<RunnerConfig> = {}): TestRunner {
  const t = tempDir('airlock-runner-');
  const config: RunnerConfig = {
    ...defaultRunnerConfig({}),
    name: 'test-runner',
    packDirs,
    logPath: join(t.dir, 'events.jsonl'),
    ...overrides,
  };
  const catalog = loadCatalog(config.packDirs);
  if (catalog.failures.length > 0) {
    t.cleanup();
    throw new Error(`fixture packs failed: ${JSON.stringify(catalog.failures)}`);
  }
  const log = new SecurityLog(config.logPath);
  return { root: t.dir, config, catalog, log, engine: new ActionEngine(catalog, config, log, {}), cleanup: t.cleanup };
}

/** Wait until `fn` returns true or the timeout passes. */
export async function waitFor(fn: () => boolean, timeoutMs = 5000, stepMs = 20): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (fn()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return fn();
}

/** True while a process with this pid exists (and is not a zombie). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // A zombie still answers kill(0); its state letter in /proc says Z.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}
