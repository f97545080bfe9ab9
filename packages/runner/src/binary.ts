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
      // No exception for a directory without it: most PATH entries miss, on every run.
      if (statSync(c, { throwIfNoEntry: false })?.isFile() !== true) continue;
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // not usable here (not executable, a PATH entry that is not a directory); keep looking
    }
  }
  return undefined;
}
