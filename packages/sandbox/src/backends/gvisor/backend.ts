import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Duplex } from 'node:stream';
import { SandboxError } from '../../errors.js';
import { killIfOurs, processStartTime } from '../process-util.js';
import type { AdoptRecord, Backend, BackendStatus, LaunchSpec, VmHandle } from '../types.js';

/** Options for the gVisor backend. */
export interface GvisorOptions {
  readonly binary?: string;
}

/** Flags every runsc invocation gets: rootless, no network at all, ptrace platform (its KVM platform hung here). */
function runscFlags(stateRoot: string): string[] {
  return ['--rootless', '--network=none', '--platform=ptrace', '--root', stateRoot];
}

/**
 * The OCI runtime spec for one sandbox: airlock-init in `--stdio` mode as the
 * container's init, the pack's unpacked root (writes go to runsc's in-memory
 * overlay, never to the host copy), fresh pid/ipc/uts/mount/network namespaces.
 */
export function ociConfig(rootfs: string, spec: LaunchSpec): Record<string, unknown> {
  return {
    ociVersion: '1.0.2',
    root: { path: rootfs, readonly: false },
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ['/sbin/airlock-init', '--stdio'],
      env: ['PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin'],
      cwd: '/',
    },
    hostname: 'sandbox',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: [`size=${spec.rwMb}m`, 'mode=1777'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['size=16m'] },
    ],
    linux: { namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network' }] },
  };
}

/**
 * gVisor (`runsc`) backend: each sandbox is a gVisor sandbox, whose user-space
 * kernel (the Sentry) serves the guest's system calls. A weaker boundary than a
 * VM — the Sentry runs on the host kernel — but stronger than a container; for
 * hosts where neither KVM nor acceptable TCG speed exists. The control channel
 * is airlock-init's stdin/stdout, so a restarted daemon cannot re-attach: its
 * gVisor sandboxes are reaped instead.
 */
export class GvisorBackend implements Backend {
  readonly name = 'gvisor' as const;
  private readonly binary: string;

  constructor(opts: GvisorOptions = {}) {
    this.binary = opts.binary ?? '/usr/bin/runsc';
  }

  async probe(): Promise<BackendStatus> {
    const base = {
      name: this.name,
      isolation: 'user-space-kernel' as const,
      kvm: false,
      accel: 'ptrace',
      binary: this.binary,
    };
    if (!existsSync(this.binary))
      return { ...base, available: false, reason: `${this.binary} not found: apt-get install runsc` };
    const v = spawnSync(this.binary, ['--version'], { encoding: 'utf8' });
    if (v.status !== 0) return { ...base, available: false, reason: `runsc --version failed: ${v.stderr.trim()}` };
    return {
      ...base,
      available: true,
      version: v.stdout.split('\n')[0]?.replace(/^runsc version /, '') ?? 'unknown',
      reason:
        'gVisor user-space kernel (ptrace platform): a weaker boundary than a microVM; guest code never reaches the host kernel directly',
    };
  }

  /** The pack's root filesystem unpacked next to its squashfs (once, shared read-only by every gVisor sandbox). */
  private rootfs(spec: LaunchSpec): string {
    const dir = join(dirname(spec.packImage), '..', 'rootfs', spec.packName);
    if (existsSync(join(dir, 'sbin', 'airlock-init'))) return dir;
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(dirname(dir), { recursive: true });
    const r = spawnSync('unsquashfs', ['-q', '-n', '-d', tmp, spec.packImage], { encoding: 'utf8' });
    if (r.status !== 0)
      throw new SandboxError('backend_unavailable', `unsquashfs ${spec.packImage}: ${r.stderr || r.error?.message}`);
    try {
      renameSync(tmp, dir);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another daemon won the race
    }
    return dir;
  }

  async launch(spec: LaunchSpec): Promise<VmHandle> {
    const rootfs = this.rootfs(spec);
    const bundle = join(spec.dir, 'bundle');
    const stateRoot = join(spec.dir, 'runsc');
    mkdirSync(bundle, { recursive: true });
    mkdirSync(stateRoot, { recursive: true });
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(ociConfig(rootfs, spec)));
    const logPath = join(spec.dir, 'runsc.log');
    const log = openSync(logPath, 'a');
    // --overlay: the root is writable through an in-memory overlay inside the sandbox.
    const child = spawn(this.binary, [...runscFlags(stateRoot), '--overlay', 'run', '--bundle', bundle, spec.id], {
      stdio: ['pipe', 'pipe', log],
    });
    closeSync(log);
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid ?? -1));
      child.once('error', (e) => reject(new SandboxError('boot_failed', `cannot start runsc: ${e.message}`)));
    });
    const exited = new Promise<string>((resolve) =>
      child.once('exit', (code, sig) => resolve(sig ? `runsc killed by ${sig}` : `runsc exited with code ${code}`)),
    );
    let dead = false;
    void exited.then(() => {
      dead = true;
    });
    let connected = false;
    const record: AdoptRecord = {
      backend: 'gvisor',
      id: spec.id,
      pid,
      startTime: processStartTime(pid) ?? 0,
      stateRoot,
    };
    return {
      pid,
      record,
      exited,
      connect: async () => {
        // A pipe pair cannot be reopened: after a reset the sandbox is lost (and failed).
        if (connected || dead || !child.stdout || !child.stdin)
          throw new Error('the gVisor stdio channel cannot be reopened');
        connected = true;
        return Duplex.from({ readable: child.stdout, writable: child.stdin });
      },
      bootLog: async () => {
        try {
          return readFileSync(logPath, 'utf8').slice(-64 * 1024);
        } catch {
          return '';
        }
      },
      kill: async () => {
        this.destroy(stateRoot, spec.id);
        child.kill('SIGKILL');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      },
    };
  }

  private destroy(stateRoot: string, id: string): void {
    spawnSync(this.binary, [...runscFlags(stateRoot), 'delete', '--force', id], { stdio: 'ignore', timeout: 10_000 });
  }

  async adopt(record: AdoptRecord, _dir: string): Promise<VmHandle | undefined> {
    // The channel was the dead daemon's pipes: nothing to re-attach to. Reap it.
    if (typeof record['stateRoot'] === 'string') this.destroy(record['stateRoot'], record.id);
    killIfOurs(record.pid, record.startTime);
    return undefined;
  }
}
