import { statfsSync } from 'node:fs';

/**
 * Below this much free space on the security log's filesystem the runner refuses new work:
 * an action must never run when its attempt cannot be recorded.
 */
export const MIN_LOG_FREE_BYTES = 1024 * 1024;

/** Why the log cannot take another attempt now, or undefined when it can. */
export function logSpaceProblem(dir: string, minFree = MIN_LOG_FREE_BYTES): string | undefined {
  try {
    const s = statfsSync(dir);
    const free = s.bavail * s.bsize;
    if (free < minFree)
      return `the runner's security log filesystem (${dir}) has ${free} bytes free, below the ${minFree} bytes needed to record an attempt`;
    return undefined;
  } catch (e) {
    return `the runner's security log folder (${dir}) cannot be checked: ${(e as Error).message}`;
  }
}

/** Whether an error means the disk (or quota) is full or read-only. */
export function isNoSpace(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'EROFS';
}
