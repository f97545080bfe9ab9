import { AirlockError } from '../errors.js';
import { sha256Digest, sha256Hex } from './sha256.js';

/** One file of a pack: its path relative to the pack root, `/`-separated, and its bytes. */
export interface PackFile {
  readonly path: string;
  readonly bytes: Uint8Array;
}

/** The listing that the pack hash covers: `<sha256 hex>  <path>` lines, sorted by path. */
export function packListing(files: readonly PackFile[]): string {
  const seen = new Set<string>();
  const rows = files.map((f) => {
    checkRelativePath(f.path);
    if (seen.has(f.path)) throw new AirlockError('invalid_spec', `${f.path}: listed twice in the pack`);
    seen.add(f.path);
    return { path: f.path, digest: sha256Hex(f.bytes) };
  });
  // Byte-order comparison (not locale) so every platform sorts alike.
  rows.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return rows.map((r) => `${r.digest}  ${r.path}\n`).join('');
}

/**
 * Content hash of a pack: `sha256:` over {@link packListing}. Independent of the order
 * files are given in; bytes are hashed as stored (no line-ending normalisation).
 */
export function packHash(files: readonly PackFile[]): string {
  return sha256Digest(packListing(files));
}

function checkRelativePath(p: string): void {
  const bad =
    p.length === 0 ||
    p.startsWith('/') ||
    p.includes('\\') ||
    p.includes('\0') ||
    p.split('/').some((seg) => seg === '' || seg === '.' || seg === '..');
  if (bad) throw new AirlockError('invalid_spec', `${JSON.stringify(p)}: not a normalised relative path`);
}
