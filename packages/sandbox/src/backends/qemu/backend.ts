import { spawn, spawnSync } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { SandboxError } from '../../errors.js';
import { cgroupDirs, createCgroup, type HostCgroup, removeCgroupDirs, removeCgroupSoon } from '../../jail/cgroup.js';
import {
  type JailOptions,
  type JailPlan,
  jailArgv,
  jailReport,
  planJail,
  systemPaths,
  UidPool,
} from '../../jail/jail.js';
import {
  connectUnix,
  killIfOurs,
  processAlive,
  processCmdline,
  processStartTime,
  waitForExit,
} from '../process-util.js';
import type { AdoptRecord, Backend, BackendStatus, LaunchSpec, VmHandle } from '../types.js';
import { type Accel, qemuArgv, qemuPaths } from './argv.js';
import { hostTscKhz, type KvmProbe, probeKvm } from './kvm.js';
import { Qmp } from './qmp.js';
import { restoreQemuState, saveQemuState } from './snapshot.js';

/** Options for the QEMU backend. */
export interface QemuOptions {
  readonly binary?: string;
  /** Kernel and initramfs for the KVM probe boot. */
  readonly kernel: string;
  readonly initramfs: string;
  /** Force an accelerator instead of probing (`tcg` in tests that must not depend on the host). */
  readonly accel?: 'kvm' | 'tcg';
  /** The jail launcher built with the images (guest/jail/airlock-jail.c); no jail without it. */
  readonly launcher?: string;
  readonly jail?: JailOptions;
}

/** Host memory a monitor may use beyond the guest's RAM: TCG buffer, QEMU itself, the mapped kernel. */
const MONITOR_OVERHEAD_MB = { tcg: 192, kvm: 128 } as const;
/** Tasks a monitor may have: its threads (vCPUs, I/O workers, RCU) with room to spare. */
const MONITOR_PIDS = 128;

const LOG_TAIL = 64 * 1024;

/**
 * QEMU `-M microvm` backend: one QEMU process per sandbox, guest control over
 * virtio-serial, KVM when a probe boot succeeds, TCG otherwise.
 */
export class QemuBackend implements Backend {
  readonly name = 'qemu' as const;
  private readonly binary: string;
  private kvm: KvmProbe | undefined;
  readonly jail: JailPlan;
  private readonly uids: UidPool;

  constructor(private readonly opts: QemuOptions) {
    this.binary = opts.binary ?? '/usr/bin/qemu-system-x86_64';
    this.jail = planJail(opts.launcher, opts.jail);
    this.uids = new UidPool(this.jail.uidBase, this.jail.uidCount);
  }

  async probe(): Promise<BackendStatus> {
    const base = { name: this.name, isolation: 'microvm' as const, binary: this.binary };
    if (!existsSync(this.binary)) {
      return {
        ...base,
        available: false,
        kvm: false,
        accel: 'none',
        reason: `${this.binary} not found: apt-get install qemu-system-x86`,
      };
    }
    const v = spawnSync(this.binary, ['--version'], { encoding: 'utf8' });
    const version = /version ([\d.]+)/.exec(v.stdout)?.[1];
    if (this.opts.accel)
      this.kvm = { kvm: this.opts.accel === 'kvm', reason: `accelerator forced to ${this.opts.accel}` };
    this.kvm ??= await probeKvm(this.binary, this.opts.kernel, this.opts.initramfs);
    return {
      ...base,
      available: true,
      kvm: this.kvm.kvm,
      accel: this.kvm.kvm ? 'kvm' : 'tcg',
      reason: this.kvm.reason,
      ...(version ? { version } : {}),
      jail: { level: this.jail.level, reason: this.jail.reason, properties: jailReport(this.jail, true) },
    };
  }

  private accel(): Accel {
    if (this.kvm?.kvm) return { kind: 'kvm' };
    const tscKhz = hostTscKhz();
    return tscKhz ? { kind: 'tcg', tscKhz } : { kind: 'tcg' };
  }

  async launch(spec: LaunchSpec): Promise<VmHandle> {
    if (!this.kvm) await this.probe();
    const paths = qemuPaths(spec.dir);
    // Unix socket paths are limited to 107 bytes (sun_path); fail with the reason, not EINVAL later.
    if (Buffer.byteLength(paths.qmp) > 107)
      throw new SandboxError(
        'backend_unavailable',
        `runtime dir ${spec.dir} is too long for Unix sockets; use a shorter AIRLOCK_HOME`,
      );
    mkdirSync(paths.run, { recursive: true, mode: 0o700 });
    const accel = this.accel();
    const argv = qemuArgv(spec, accel);
    const handle = await this.start(spec, accel.kind, argv);
    if (spec.restoreFrom) {
      try {
        await restoreQemuState(paths.qmp, paths.incoming, spec.restoreFrom, handle.exited);
      } catch (e) {
        await handle.kill();
        throw e;
      }
    }
    return handle;
  }

  private async start(spec: LaunchSpec, accel: 'kvm' | 'tcg', argv: string[]): Promise<VmHandle> {
    const paths = qemuPaths(spec.dir);
    if (this.jail.level === 'none') {
      const log = openSync(paths.log, 'a');
      // Detached: QEMU outlives a daemon crash so the next daemon can re-adopt or reap it.
      const child = spawn(this.binary, argv, { detached: true, stdio: ['ignore', log, log] });
      closeSync(log);
      const pid = await new Promise<number>((resolve, reject) => {
        child.once('spawn', () => resolve(child.pid ?? -1));
        child.once('error', (e) =>
          reject(new SandboxError('boot_failed', `cannot start ${this.binary}: ${e.message}`)),
        );
      });
      child.unref();
      const exited = new Promise<string>((resolve) => {
        child.once('exit', (code, sig) => resolve(sig ? `qemu killed by ${sig}` : `qemu exited with code ${code}`));
      });
      const startTime = processStartTime(pid) ?? 0;
      return this.handle({ backend: 'qemu', id: spec.id, pid, startTime, dir: spec.dir }, spec.dir, exited);
    }
    return this.launchJailed(spec, accel, argv);
  }

  /** Start QEMU through the jail launcher: own uid, namespaces, root and cgroup (see guest/jail/airlock-jail.c). */
  private async launchJailed(spec: LaunchSpec, accel: 'kvm' | 'tcg', argv: string[]): Promise<VmHandle> {
    const paths = qemuPaths(spec.dir);
    const root = this.jail.level === 'root';
    const uid = root ? this.uids.take() : undefined;
    let cg: HostCgroup | undefined;
    const cleanup = () => {
      if (uid !== undefined) this.uids.release(uid);
      if (cg) removeCgroupSoon(cg);
    };
    try {
      if (uid !== undefined) chownSync(paths.run, uid, uid);
      mkdirSync(paths.jailRoot, { recursive: true, mode: 0o755 });
      if (root && this.jail.cgroups.version !== 'none') {
        cg = createCgroup(this.jail.cgroups, spec.id, {
          cpus: spec.vcpus,
          memoryBytes: (spec.memoryMb + MONITOR_OVERHEAD_MB[accel]) * 2 ** 20,
          pids: MONITOR_PIDS,
        });
      }
    } catch (e) {
      cleanup();
      throw new SandboxError('backend_unavailable', `cannot prepare the jail: ${(e as Error).message}`);
    }
    const launcherArgv = jailArgv(this.jail, {
      root: paths.jailRoot,
      ...(uid !== undefined ? { uid, gid: uid } : {}),
      readOnly: [
        ...systemPaths(),
        ...(this.binary.startsWith('/usr/') ? [] : [this.binary]),
        spec.kernel,
        spec.initramfs,
        spec.packImage,
      ],
      readWrite: [paths.run],
      devices: ['null', 'zero', 'urandom', 'random', ...(accel === 'kvm' ? ['kvm'] : [])],
      cgroupProcs: cg?.procsFiles ?? [],
    });
    const log = openSync(paths.log, 'a');
    const [bin, ...rest] = launcherArgv as [string, ...string[]];
    // Detached: the VM outlives a daemon crash so the next daemon can re-adopt or reap it.
    // fd 3 carries the launcher's report: "pid N" (QEMU's host pid) or "error …".
    const child = spawn(bin, [...rest, this.binary, ...argv], {
      detached: true,
      stdio: ['ignore', log, log, 'pipe'],
    });
    closeSync(log);
    const exited = new Promise<string>((resolve) => {
      child.once('exit', (code, sig) => {
        cleanup();
        resolve(sig ? `qemu killed by ${sig}` : `qemu exited with code ${code}`);
      });
    });
    let report = '';
    try {
      report = await new Promise<string>((resolve, reject) => {
        child.once('error', (e) => reject(new Error(`cannot start ${bin}: ${e.message}`)));
        const out = child.stdio[3] as Readable;
        out.setEncoding('utf8');
        let text = '';
        out.on('data', (d: string) => {
          text = (text + d).slice(0, 4096);
        });
        out.on('end', () => resolve(text));
        out.on('error', reject);
      });
    } catch (e) {
      child.kill('SIGKILL');
      throw new SandboxError('boot_failed', (e as Error).message);
    }
    child.unref();
    const pid = Number(/^pid (\d+)$/m.exec(report)?.[1] ?? 0);
    if (!pid) {
      child.kill('SIGKILL');
      await exited;
      throw new SandboxError(
        'boot_failed',
        `jail launcher failed: ${report.trim().replace(/^error /, '') || (await exited)}`,
      );
    }
    const startTime = processStartTime(pid) ?? 0;
    return this.handle(
      {
        backend: 'qemu',
        id: spec.id,
        pid,
        startTime,
        dir: spec.dir,
        ...(uid !== undefined ? { uid } : {}),
        jailed: true,
      },
      spec.dir,
      exited,
    );
  }

  async adopt(record: AdoptRecord, dir: string): Promise<VmHandle | undefined> {
    // Only a live process with the recorded start time and our sandbox id in its argv is ours.
    if (!processAlive(record.pid, record.startTime)) return undefined;
    if (!processCmdline(record.pid).some((a) => a.includes(`airlock-${record.id}`))) return undefined;
    // The record is untrusted input: the uid must be one of ours and free; the cgroup paths are derived, not read.
    const uid = typeof record['uid'] === 'number' ? record['uid'] : undefined;
    if (uid !== undefined && !this.uids.claim(uid)) return undefined;
    const dirs = record['jailed'] ? cgroupDirs(this.jail.cgroups, record.id) : [];
    const exited = waitForExit(record.pid, record.startTime).then((why) => {
      if (uid !== undefined) this.uids.release(uid);
      if (dirs.length) removeCgroupSoon({ remove: () => removeCgroupDirs(dirs) });
      return why;
    });
    return this.handle(record, dir, exited);
  }

  cleanup(record: AdoptRecord): void {
    if (!record['jailed'] || !/^sb_[0-9a-f]{12}$/.test(record.id)) return;
    const dirs = cgroupDirs(this.jail.cgroups, record.id);
    if (dirs.length) removeCgroupSoon({ remove: () => removeCgroupDirs(dirs) });
  }

  private handle(record: AdoptRecord, dir: string, exited: Promise<string>): VmHandle {
    const paths = qemuPaths(dir);
    let tail = '';
    const readRing = async (): Promise<string> => {
      // ringbuf-read consumes what it returns, so keep our own bounded tail of it.
      try {
        const q = await Qmp.open(paths.qmp);
        try {
          const got = (await q.execute('ringbuf-read', { device: 'con', size: LOG_TAIL, format: 'utf8' })) as string;
          tail = (tail + got).slice(-LOG_TAIL);
        } finally {
          q.close();
        }
      } catch {
        // the VM is gone: what we have is all there is
      }
      return tail;
    };
    let dead = false;
    void exited.then(() => {
      dead = true;
    });
    return {
      pid: record.pid,
      record,
      exited,
      connect: () => connectUnix(paths.ctl),
      bootLog: () => (dead ? Promise.resolve(tail) : readRing()),
      kill: async () => {
        if (!dead) await readRing();
        killIfOurs(record.pid, record.startTime);
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      },
      freezeForTest: async () => {
        const q = await Qmp.open(paths.qmp);
        await q.execute('stop');
        q.close();
      },
      saveSnapshot: (file: string) =>
        saveQemuState(
          paths.qmp,
          paths.outgoing,
          file,
          typeof record['uid'] === 'number' ? (record['uid'] as number) : undefined,
        ),
    };
  }
}
