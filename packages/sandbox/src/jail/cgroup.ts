import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Host cgroups for VM monitor processes: one group per sandbox under
 * `airlock/`, with CPU, memory and pid limits, on cgroup v2 (unified) or v1
 * (one hierarchy per controller), whichever carries the controllers here.
 */

/** Where the cpu, memory and pids controllers are mounted on this host. */
export interface CgroupLayout {
  readonly version: 'v1' | 'v2' | 'none';
  /** v2: the unified mount; v1: one mount per controller. */
  readonly mounts: Readonly<Partial<Record<'cpu' | 'memory' | 'pids' | 'unified', string>>>;
  readonly reason?: string;
}

/** Limits of one sandbox's monitor process. */
export interface CgroupLimits {
  /** CPU time per period, in cores (the vCPU count). */
  readonly cpus: number;
  readonly memoryBytes: number;
  /** Tasks (processes and threads) at once. */
  readonly pids: number;
}

const PERIOD_US = 100_000;
const CONTROLLERS = ['cpu', 'memory', 'pids'] as const;

/** Read /proc/self/mountinfo and find the controllers. */
export function detectCgroups(mountinfo = '/proc/self/mountinfo'): CgroupLayout {
  let text = '';
  try {
    text = readFileSync(mountinfo, 'utf8');
  } catch {
    return { version: 'none', mounts: {}, reason: 'cannot read /proc/self/mountinfo' };
  }
  const v1: Partial<Record<'cpu' | 'memory' | 'pids', string>> = {};
  let unified: string | undefined;
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const mountPoint = left.split(' ')[4];
    const [fstype, , superOpts = ''] = right.split(' ');
    if (!mountPoint) continue;
    if (fstype === 'cgroup2') unified ??= mountPoint;
    if (fstype === 'cgroup') {
      const opts = superOpts.split(',');
      for (const c of CONTROLLERS) if (opts.includes(c)) v1[c] ??= mountPoint;
    }
  }
  if (unified && existsSync(join(unified, 'cgroup.controllers'))) {
    const have = readFileSync(join(unified, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
    if (CONTROLLERS.every((c) => have.includes(c))) return { version: 'v2', mounts: { unified } };
  }
  if (CONTROLLERS.every((c) => v1[c])) return { version: 'v1', mounts: v1 };
  return {
    version: 'none',
    mounts: {},
    reason: `no cgroup hierarchy with ${CONTROLLERS.join(', ')} (v1: ${Object.keys(v1).join(', ') || 'none'}; v2: ${unified ?? 'not mounted'})`,
  };
}

/** One sandbox's host cgroup(s). */
export interface HostCgroup {
  /** The `cgroup.procs` files the monitor joins before it starts. */
  readonly procsFiles: readonly string[];
  readonly dirs: readonly string[];
  /** Remove the groups; retried by the caller until the processes have gone. Returns true when all are gone. */
  remove(): boolean;
}

/** The directories a sandbox's cgroup has (or would have) on this layout. */
export function cgroupDirs(layout: CgroupLayout, name: string): string[] {
  if (layout.version === 'v2' && layout.mounts.unified) return [join(layout.mounts.unified, 'airlock', name)];
  if (layout.version === 'v1') return CONTROLLERS.map((c) => join(layout.mounts[c] ?? '/nonexistent', 'airlock', name));
  return [];
}

export function removeCgroupDirs(dirs: readonly string[]): boolean {
  let all = true;
  for (const d of dirs) {
    try {
      rmdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') all = false;
    }
  }
  return all;
}

/** Create the groups and write the limits; throws (with the file) when the host does not allow it. */
export function createCgroup(layout: CgroupLayout, name: string, limits: CgroupLimits): HostCgroup {
  const dirs = cgroupDirs(layout, name);
  const write = (dir: string, file: string, value: string) => writeFileSync(join(dir, file), value);
  try {
    if (layout.version === 'v2' && layout.mounts.unified) {
      const root = layout.mounts.unified;
      const parent = join(root, 'airlock');
      mkdirSync(parent, { recursive: true });
      // Controllers must be enabled from the top down to reach the sandbox's group.
      write(root, 'cgroup.subtree_control', '+cpu +memory +pids');
      write(parent, 'cgroup.subtree_control', '+cpu +memory +pids');
      const [dir] = dirs as [string];
      mkdirSync(dir);
      write(dir, 'cpu.max', `${Math.round(limits.cpus * PERIOD_US)} ${PERIOD_US}`);
      write(dir, 'memory.max', String(limits.memoryBytes));
      if (existsSync(join(dir, 'memory.swap.max'))) write(dir, 'memory.swap.max', '0');
      write(dir, 'pids.max', String(limits.pids));
    } else if (layout.version === 'v1') {
      const [cpu, memory, pids] = dirs as [string, string, string];
      for (const d of dirs) mkdirSync(d, { recursive: true });
      write(cpu, 'cpu.cfs_period_us', String(PERIOD_US));
      write(cpu, 'cpu.cfs_quota_us', String(Math.round(limits.cpus * PERIOD_US)));
      write(memory, 'memory.limit_in_bytes', String(limits.memoryBytes));
      write(pids, 'pids.max', String(limits.pids));
    } else {
      throw new Error(layout.reason ?? 'no cgroups');
    }
  } catch (e) {
    removeCgroupDirs(dirs);
    throw e;
  }
  return {
    procsFiles: dirs.map((d) => join(d, 'cgroup.procs')),
    dirs,
    remove: () => removeCgroupDirs(dirs),
  };
}

/** Remove a sandbox's groups once its processes have gone (they linger a moment after SIGKILL). */
export function removeCgroupSoon(cg: Pick<HostCgroup, 'remove'>, attempts = 20): void {
  if (cg.remove() || attempts <= 0) return;
  setTimeout(() => removeCgroupSoon(cg, attempts - 1), 250).unref();
}
