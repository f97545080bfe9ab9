import { createHash } from 'node:crypto';
import type { ImageManifest } from '../images/manifest.js';

/** Name under which a guest image is advertised for trust-on-hash (a pseudo-pack with no actions). */
export function imagePackName(pack: string): string {
  return `sandbox-image:${pack}`;
}

/**
 * The hash of everything a sandbox of this pack boots: kernel, initramfs (with the guest
 * agent) and the pack's root image. `sha256:` over the canonical JSON
 * `{"initramfs": hex, "kernel": hex, "pack": hex}` (keys sorted, no spaces), so a change to
 * any of the three is a new hash that must be trusted again.
 */
export function imageHash(manifest: ImageManifest, pack: string): string | undefined {
  const p = manifest.packs[pack];
  if (p === undefined) return undefined;
  const canonical = JSON.stringify({
    initramfs: manifest.initramfs.sha256,
    kernel: manifest.kernel.sha256,
    pack: p.sha256,
  });
  return `sha256:${createHash('sha256').update(canonical).digest('hex')}`;
}

/** Every built pack's image as a `hello.packs` entry: the files it covers, no actions. */
export function imagePacks(manifest: ImageManifest, version: string) {
  return Object.keys(manifest.packs)
    .sort()
    .map((pack) => {
      const p = manifest.packs[pack]!; // key from the same object
      return {
        name: imagePackName(pack),
        version,
        hash: imageHash(manifest, pack)!,
        actions: [] as string[],
        files: [
          { path: 'initramfs', sha256: manifest.initramfs.sha256 },
          { path: 'kernel', sha256: manifest.kernel.sha256 },
          { path: `packs/${pack}`, sha256: p.sha256 },
        ],
      };
    });
}
