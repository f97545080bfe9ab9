import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { AirlockError, type PackFile } from '@airlock/core';

/** At most this many files and bytes in one pack: packs are small by design. */
const MAX_FILES = 2000;
const MAX_BYTES = 32 * 1024 * 1024;

/**
 * Read every file of a pack folder as `{path, bytes}`, paths relative and `/`-separated.
 * Hidden entries (`.git`, `.DS_Store`) are skipped. Symbolic links are refused: a pack's
 * content must be exactly what its hash covers, and a link could point anywhere.
 */
export function readPackFiles(dir: string): PackFile[] {
  const files: PackFile[] = [];
  let total = 0;
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      if (name.startsWith('.')) continue;
      const full = join(d, name);
      const st = lstatSync(full);
      const rel = relative(dir, full).split(sep).join('/');
      if (st.isSymbolicLink())
        throw new AirlockError('invalid_spec', `${rel}: symbolic links are not allowed in packs`);
      if (st.isDirectory()) walk(full);
      else if (st.isFile()) {
        total += st.size;
        if (files.length >= MAX_FILES || total > MAX_BYTES) {
          throw new AirlockError('invalid_spec', `${dir}: pack exceeds ${MAX_FILES} files or ${MAX_BYTES} bytes`);
        }
        files.push({ path: rel, bytes: readFileSync(full) });
      }
    }
  };
  try {
    walk(dir);
  } catch (e) {
    if (e instanceof AirlockError) throw e;
    throw new AirlockError('invalid_spec', `${dir}: cannot read pack: ${(e as Error).message}`);
  }
  return files;
}
