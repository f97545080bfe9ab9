import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { Duplex } from 'node:stream';

/** Start time of a process (field 22 of /proc/PID/stat), or undefined when it does not exist. */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces: count fields after its closing parenthesis.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const v = Number(rest[19]);
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** The NUL-separated command line of a process, or [] when it is gone. */
export function processCmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** True while the process exists and is not a zombie. */
export function processAlive(pid: number, startTime?: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    return startTime === undefined || processStartTime(pid) === startTime;
  } catch {
    return false;
  }
}

/** Resolves when a process that is not our child has gone (polls /proc). */
export function waitForExit(pid: number, startTime: number, everyMs = 250): Promise<string> {
  return new Promise((resolve) => {
    const t = setInterval(() => {
      if (!processAlive(pid, startTime)) {
        clearInterval(t);
        resolve(`process ${pid} exited`);
      }
    }, everyMs);
    t.unref();
  });
}

/** Connect to a Unix socket. */
export function connectUnix(path: string, timeoutMs = 2000): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`connect ${path}: timed out`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

/** SIGKILL a process if it is still the one we started; true if a signal was sent. */
export function killIfOurs(pid: number, startTime: number): boolean {
  if (!processAlive(pid, startTime)) return false;
  try {
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}
