/**
 * Test fixtures shared by the sandbox test files (not exported from the
 * package). Images come from one shared cache so CI builds them once per run.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SandboxClient } from '../client.js';
import { createSandboxServer } from '../http/server.js';
import { buildImages } from '../images/builder.js';
import type { ImageManifest } from '../images/manifest.js';
import { type ManagerOptions, SandboxManager } from '../manager.js';

/** The shared image cache for tests: `$AIRLOCK_IMAGE_CACHE` or /var/cache/airlock-images. */
export function testImageDir(): string {
  return process.env['AIRLOCK_IMAGE_CACHE'] ?? '/var/cache/airlock-images';
}

/** Build the images if needed (progress on stderr), once per cache. */
export function ensureImages(): Promise<ImageManifest> {
  return buildImages({
    cacheDir: testImageDir(),
    progress: (s, n, m) => process.stderr.write(`[images ${s}/${n}] ${m}\n`),
  });
}

/** A daemon running in this process on an ephemeral port, with its own state dir. */
export interface TestDaemon {
  readonly manager: SandboxManager;
  readonly client: SandboxClient;
  readonly address: string;
  readonly stateDir: string;
  close(): Promise<void>;
}

/** Start a daemon for a test file. Small guests and TCG: these tests must not depend on KVM. */
export async function startDaemon(opts: Partial<ManagerOptions> = {}): Promise<TestDaemon> {
  await ensureImages();
  // Short path: Unix socket paths must stay under 108 bytes.
  const stateDir = mkdtempSync(join(tmpdir(), 'alsb-'));
  const manager = await SandboxManager.open({
    imageDir: testImageDir(),
    stateDir,
    accel: 'tcg',
    defaultMemoryMb: 192,
    // Saving VM states costs a boot per kind in the background: only the tests of it turn it on.
    snapshots: false,
    ...opts,
  });
  const server = createSandboxServer(manager);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    manager,
    client: new SandboxClient(address),
    address,
    stateDir,
    async close() {
      await manager.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** Poll until `fn` returns true or the time is up. */
export async function waitUntil(fn: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** PIDs of VM monitor processes (qemu, runsc, firecracker) whose command line mentions `needle`. */
export function vmPidsWith(needle: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue;
    }
    if (/qemu-system|runsc|firecracker/.test(cmd) && cmd.includes(needle)) out.push(Number(p));
  }
  return out;
}
