import { readdirSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Pids of processes that have `file` (or its `-wal`/`-shm` companions) open, found by reading
 * /proc/PID/fd. A running control plane always holds its SQLite file open, so this is how a
 * restore knows it would pull the database out from under a server. Processes whose fds this
 * user may not read are not seen: run restore as the service user or root.
 */
export function processesHolding(file: string): number[] {
  let target: string;
  try {
    target = realpathSync(file);
  } catch {
    return [];
  }
  const names = new Set([target, `${target}-wal`, `${target}-shm`]);
  const pids: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const pid of entries) {
    if (!/^\d+$/.test(pid)) continue;
    let fds: string[];
    try {
      fds = readdirSync(join('/proc', pid, 'fd'));
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (names.has(readlinkSync(join('/proc', pid, 'fd', fd)))) {
          pids.push(Number(pid));
          break;
        }
      } catch {
        // The fd closed while we looked.
      }
    }
  }
  return pids;
}
