import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SandboxError } from '../errors.js';

function run(cmd: string, args: readonly string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw new SandboxError('image_build_failed', `${cmd}: ${r.error.message}`);
  if (r.status !== 0)
    throw new SandboxError(
      'image_build_failed',
      `${cmd} ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim().slice(-600)}`,
    );
  return r.stdout;
}

/** The package a Debian metapackage (e.g. `linux-image-cloud-amd64`) currently depends on. */
export function resolveMetapackage(name: string, prefix: string): string {
  const out = run('apt-cache', ['depends', '--no-recommends', '--no-suggests', name]);
  const m = out
    .split('\n')
    .map((l) => /^\s*Depends:\s*(\S+)/.exec(l)?.[1])
    .find((p) => p?.startsWith(prefix));
  if (!m)
    throw new SandboxError(
      'image_build_failed',
      `apt-cache shows no ${prefix}* dependency of ${name} (run "apt-get update")`,
    );
  return m;
}

/**
 * Download a package's .deb with `apt-get download` into `dir` (cached: an
 * existing `NAME_*.deb` is reused) and return its path. Packages are never
 * installed on the host; apt verifies them against the signed archive lists.
 */
export function downloadDeb(name: string, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const find = () => readdirSync(dir).find((f) => f.startsWith(`${name}_`) && f.endsWith('.deb'));
  let hit = find();
  if (!hit) {
    try {
      // Name the archive's newest version: a locally installed build from another source
      // (say, a vendor's nodejs) would otherwise be what apt tries to fetch.
      const newest = /^\s*\S+\s*\|\s*(\S+)\s*\|/m.exec(run('apt-cache', ['madison', name]))?.[1];
      run('apt-get', ['download', '-q', newest ? `${name}=${newest}` : name], dir);
    } catch (e) {
      throw new SandboxError(
        'image_build_failed',
        `${(e as Error).message}\n(if the package is unknown, refresh the lists with "apt-get update")`,
      );
    }
    hit = find();
  }
  if (!hit) throw new SandboxError('image_build_failed', `apt-get download ${name} produced no .deb`);
  return join(dir, hit);
}

/** Unpack a .deb's files into `root` (no maintainer scripts run). */
export function extractDeb(deb: string, root: string): void {
  mkdirSync(root, { recursive: true });
  run('dpkg-deb', ['-x', deb, root]);
}

/** Version string of a .deb file. */
export function debVersion(deb: string): string {
  return run('dpkg-deb', ['-f', deb, 'Version']).trim();
}

/** True when the host tools the image builder needs are present. */
export function builderToolsMissing(): string[] {
  const need: [string, string][] = [
    ['/usr/bin/apt-get', 'apt'],
    ['/usr/bin/dpkg-deb', 'dpkg'],
    ['/usr/bin/mksquashfs', 'squashfs-tools'],
    ['/usr/bin/musl-gcc', 'musl-tools'],
    ['/usr/bin/lz4', 'lz4'],
  ];
  return need.filter(([f]) => !existsSync(f)).map(([, p]) => p);
}

export { run as runTool };
