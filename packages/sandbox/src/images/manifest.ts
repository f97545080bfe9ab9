import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SandboxError } from '../errors.js';

/** One built file and its checksum. */
export interface ImageFile {
  readonly path: string; // relative to the image cache dir
  readonly sha256: string;
  readonly bytes: number;
}

/** What `images build` produced; written last, so its presence means a complete build. */
export interface ImageManifest {
  readonly format: 1;
  /** Hash of the recipes and agent sources the images were built from: a change rebuilds. */
  readonly recipeHash: string;
  readonly builtAt: string;
  readonly kernel: ImageFile & { readonly package: string; readonly version: string };
  readonly initramfs: ImageFile;
  readonly agent: ImageFile;
  /** The host-side jail launcher (guest/jail/airlock-jail.c); absent in builds before issue 10. */
  readonly jail?: ImageFile;
  readonly packs: Readonly<
    Record<
      string,
      ImageFile & {
        readonly run: readonly string[];
        readonly debs: readonly string[];
        readonly description: string;
        /** Code that prints `ok` in a fresh sandbox of this pack. */
        readonly smoke?: string;
      }
    >
  >;
}

export const MANIFEST_FILE = 'manifest.json';

/** SHA-256 of a file, streamed. */
export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

/** Read the manifest, or undefined when no complete build exists. */
export function readManifest(cacheDir: string): ImageManifest | undefined {
  const f = join(cacheDir, MANIFEST_FILE);
  if (!existsSync(f)) return undefined;
  try {
    const m = JSON.parse(readFileSync(f, 'utf8')) as ImageManifest;
    return m.format === 1 ? m : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Check every file of a build against its recorded checksum. Throws
 * `image_missing` or `image_corrupt` naming the file: a daemon must not boot
 * guests from images it did not build.
 */
export async function verifyImages(cacheDir: string, m: ImageManifest): Promise<void> {
  const files = [m.kernel, m.initramfs, m.agent, ...(m.jail ? [m.jail] : []), ...Object.values(m.packs)];
  await Promise.all(
    files.map(async (f) => {
      const p = join(cacheDir, f.path);
      if (!existsSync(p))
        throw new SandboxError('image_missing', `image file ${p} is missing; run "airlock sandbox images build"`);
      const got = await sha256File(p);
      if (got !== f.sha256) {
        throw new SandboxError(
          'image_corrupt',
          `image file ${p} has sha256 ${got.slice(0, 16)}…, expected ${f.sha256.slice(0, 16)}…; rebuild with "airlock sandbox images build --force"`,
        );
      }
    }),
  );
}
