import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { type CgroupLayout, detectCgroups } from './cgroup.js';

/**
 * The host-side jail around each VM monitor (like Firecracker's jailer):
 * what this host allows, the launcher's command line, and the report that
 * `GET /info` and `airlock sandbox doctor` show. The launcher itself is
 * guest/jail/airlock-jail.c, built with the images.
 */

/** `auto`: the strongest jail this host allows; `off`: none (tests of the bare backend, debugging). */
export type JailMode = 'auto' | 'off';

/** Daemon settings for the jail. */
export interface JailOptions {
  readonly mode?: JailMode;
  /** First host uid/gid handed to sandboxes (root only); one per sandbox. Default 200000. */
  readonly uidBase?: number;
  /** How many uids from uidBase (default 4096). */
  readonly uidCount?: number;
}

/** How the launcher runs on this host. */
export type JailLevel = 'root' | 'userns' | 'none';

/** One property of the jail and whether it is in effect, for the operator. */
export interface JailProperty {
  readonly property: string;
  readonly in_effect: boolean;
  readonly detail: string;
}

/** What the jail does on this host. */
export interface JailPlan {
  readonly level: JailLevel;
  readonly launcher: string | undefined;
  readonly cgroups: CgroupLayout;
  readonly uidBase: number;
  readonly uidCount: number;
  readonly reason: string;
}

function userNamespacesWork(): boolean {
  return spawnSync('unshare', ['--user', '--map-root-user', 'true'], { stdio: 'ignore' }).status === 0;
}

/** Decide the jail level for this host: root → everything; not root → a user namespace if allowed; else none. */
export function planJail(launcher: string | undefined, opts: JailOptions = {}): JailPlan {
  const base = {
    launcher,
    uidBase: opts.uidBase ?? 200_000,
    uidCount: opts.uidCount ?? 4096,
  };
  const euid = process.geteuid?.() ?? -1;
  // Creating groups needs write access to the hierarchy: root, or a delegated subtree.
  const cgroups = euid === 0 ? detectCgroups() : { version: 'none' as const, mounts: {}, reason: 'not root' };
  if (opts.mode === 'off') return { ...base, level: 'none', cgroups, reason: 'jail turned off by the daemon options' };
  if (!launcher || !existsSync(launcher))
    return { ...base, level: 'none', cgroups, reason: 'the images have no airlock-jail launcher: rebuild them' };
  if (euid === 0) return { ...base, level: 'root', cgroups, reason: 'daemon runs as root: full jail' };
  if (userNamespacesWork())
    return {
      ...base,
      level: 'userns',
      cgroups,
      reason: 'daemon is not root: namespaces through a user namespace, no dedicated uid, no host cgroup',
    };
  return {
    ...base,
    level: 'none',
    cgroups,
    reason: 'daemon is not root and user namespaces are disabled: the VM monitor runs as the daemon user',
  };
}

/** Which jail properties are in effect under a plan (the tests check each on a live monitor). */
export function jailReport(plan: JailPlan, seccomp: boolean): JailProperty[] {
  const on = plan.level !== 'none';
  const root = plan.level === 'root';
  const cg = root && plan.cgroups.version !== 'none';
  return [
    {
      property: 'dedicated uid/gid',
      in_effect: root,
      detail: root
        ? `one unprivileged uid/gid per sandbox from ${plan.uidBase}, no supplementary groups`
        : 'runs as the daemon user',
    },
    {
      property: 'mount namespace',
      in_effect: on,
      detail: on
        ? 'own root on a tmpfs: /usr and libraries read-only, the kernel, initramfs and pack image read-only, its socket directory; a VM restored from a saved state also gets a /proc of its own pid namespace (pid entries only) to open its sealed RAM image'
        : 'sees the host filesystem as the daemon user',
    },
    {
      property: 'network namespace',
      in_effect: on,
      detail: on ? 'own, no interfaces (loopback down)' : "the host's network",
    },
    { property: 'pid namespace', in_effect: on, detail: on ? 'own; the monitor is its PID 1' : "the host's pids" },
    { property: 'ipc, uts, cgroup namespaces', in_effect: on, detail: on ? 'own' : "the host's" },
    {
      property: 'host cgroup (cpu, memory, pids)',
      in_effect: cg,
      detail: cg
        ? `cgroup ${plan.cgroups.version}: CPU quota = vCPUs, memory = guest RAM + monitor overhead, pids bounded`
        : `not in effect: ${plan.cgroups.reason ?? 'no writable cgroup hierarchy'}`,
    },
    {
      property: 'seccomp',
      in_effect: seccomp,
      detail: seccomp ? 'QEMU -sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny' : 'off',
    },
    {
      property: 'no_new_privs',
      in_effect: on || seccomp,
      detail: on ? 'set by the launcher' : seccomp ? "set by QEMU's seccomp filter" : 'not set',
    },
    {
      property: 'capabilities dropped',
      in_effect: on,
      detail: on ? 'effective, permitted, inheritable, ambient and bounding sets empty' : 'the daemon user’s',
    },
  ];
}

/** Everything the launcher needs for one sandbox. */
export interface JailSpec {
  readonly root: string;
  readonly uid?: number;
  readonly gid?: number;
  readonly readOnly: readonly string[];
  readonly readWrite: readonly string[];
  readonly devices: readonly string[];
  readonly cgroupProcs: readonly string[];
  /** Mount a procfs of the jail's pid namespace (pid entries only): to open an inherited descriptor by path. */
  readonly proc?: boolean;
}

/** The launcher's command line, up to and including `--` (the monitor's argv follows). */
export function jailArgv(plan: JailPlan, spec: JailSpec): string[] {
  if (!plan.launcher || plan.level === 'none') throw new Error('no jail on this host');
  const out: string[] = [plan.launcher];
  if (plan.level === 'root') {
    if (!spec.uid || !spec.gid) throw new Error('a jailed monitor needs a uid and gid');
    out.push('--uid', String(spec.uid), '--gid', String(spec.gid));
  } else {
    out.push('--userns');
  }
  if (spec.proc) out.push('--proc');
  out.push('--root', spec.root);
  for (const p of spec.readOnly) out.push('--ro', p);
  for (const p of spec.readWrite) out.push('--rw', p);
  for (const d of spec.devices) out.push('--dev', d);
  for (const c of spec.cgroupProcs) out.push('--cgroup', c);
  out.push('--');
  return out;
}

/** System paths the dynamically linked QEMU needs inside the jail (read-only). */
export function systemPaths(): string[] {
  return ['/usr', '/lib', '/lib64', '/etc/ld.so.cache'].filter((p) => existsSync(p));
}

/** Hands out one host uid per live sandbox. */
export class UidPool {
  private readonly used = new Set<number>();

  constructor(
    private readonly base: number,
    private readonly count: number,
  ) {}

  /** A free uid; throws when every uid of the range is taken. */
  take(): number {
    for (let i = 0; i < this.count; i++) {
      const uid = this.base + i;
      if (!this.used.has(uid)) {
        this.used.add(uid);
        return uid;
      }
    }
    throw new Error(`all ${this.count} jail uids from ${this.base} are in use`);
  }

  /** Mark a uid of a re-adopted sandbox as taken; false when it is outside the range or already taken. */
  claim(uid: number): boolean {
    if (!Number.isInteger(uid) || uid < this.base || uid >= this.base + this.count || this.used.has(uid)) return false;
    this.used.add(uid);
    return true;
  }

  release(uid: number): void {
    this.used.delete(uid);
  }
}
