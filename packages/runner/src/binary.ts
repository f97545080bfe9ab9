import { accessSync, constants, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';

/**
 * Find an executable on a PATH string, returning its absolute path. Only the configured PATH
 * is searched (never the runner's own), and an absolute name is checked as is.
 */
export function findBinary(name: string, pathVar: string): string | undefined {
  const candidates = isAbsolute(name) ? [name] : name.includes('/') ? [] : pathVar.split(':').map((d) => join(d, name));
  for (const c of candidates) {
    try {
      if (!statSync(c).isFile()) continue;
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // not here; keep looking
    }
  }
  return undefined;
}
