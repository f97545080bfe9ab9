// CPU time of this process's runner spawn helper, with every action it forked and reaped.
import { readFileSync } from 'node:fs';
import { spawnHelper } from '../packages/runner/dist/index.js';

const TICKS = 100; // USER_HZ on Linux

/** CPU ms of the spawn helper and every action it reaped (utime+stime+cutime+cstime), 0 without one. */
export function helperCpuMs() {
  const pid = spawnHelper()?.pid;
  if (pid === undefined) return 0;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 1000) / TICKS;
  } catch {
    return 0;
  }
}
