import { spawn, spawnSync } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
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
import { restoreQemuState, saveQemuState, snapshotRamPath } from './snapshot.js';

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
/** The descriptor number a restored monitor finds its RAM image at (`mem-path=/proc/self/fd/4`). */
const RAM_FD = 4;

/** A sealed in-memory copy of one saved RAM image, shared by every VM restored from it. */
interface RamImage {
  readonly fd: number;
  readonly ino: number;
  readonly mtimeMs: number;
}

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
  /** Sealed copies of saved RAM images by path (see `ramImage`). */
  private readonly ramImages = new Map<string, Promise<RamImage | undefined>>();

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
    // A jail inside a user namespace cannot mount the /proc a restore opens its RAM image
    // through (the kernel refuses procfs where no full one is visible): its source VMs keep
    // RAM in the saved stream, and restores stream it in.
    if (spec.snapshotSource && this.jail.level === 'userns') spec = { ...spec, snapshotSource: false };
    const accel = this.accel();
    // A state saved with its RAM image restores by mapping it (fast, shared); an older
    // state carries its RAM in the stream and restores the slow way.
    const ramFile = spec.restoreFrom ? snapshotRamPath(spec.restoreFrom) : undefined;
    const mapped = ramFile !== undefined && existsSync(ramFile) && this.jail.level !== 'userns';
    const ram = mapped ? await this.ramImage(ramFile) : undefined;
    const memPath = ram ? `/proc/self/fd/${RAM_FD}` : mapped ? ramFile : undefined;
    const argv = qemuArgv(spec, accel, memPath);
    const handle = await this.start(spec, accel.kind, argv, ram?.fd);
    if (spec.restoreFrom) {
      try {
        await restoreQemuState(paths.qmp, paths.incoming, spec.restoreFrom, handle.exited, memPath !== undefined);
      } catch (e) {
        await handle.kill();
        throw e;
      }
    }
    return handle;
  }

  /**
   * A sealed memfd holding the RAM image at `file`, made once per image by the
   * jail launcher (`airlock-jail --memfd`) and kept open here. Restored monitors
   * open it as /proc/self/fd/4 and map it copy-on-write: they share its pages, and
   * a subverted one cannot write it (sealed), so later sandboxes start clean. Without
   * a launcher the monitor maps the file itself (it runs unjailed then anyway).
   */
  private async ramImage(file: string): Promise<RamImage | undefined> {
    const launcher = this.jail.launcher;
    if (!launcher || !existsSync(launcher)) return undefined;
    const st = statSync(file);
    const cached = this.ramImages.get(file);
    if (cached) {
      const img = await cached.catch(() => undefined);
      if (img && img.ino === st.ino && img.mtimeMs === st.mtimeMs) return img;
      // The image was saved again: drop the old copy (once: only whoever removes it closes it).
      if (this.ramImages.get(file) === cached) {
        this.ramImages.delete(file);
        if (img) closeSync(img.fd);
      }
    }
    const made = this.ramImages.get(file) ?? this.makeRamImage(launcher, file, st.ino, st.mtimeMs);
    this.ramImages.set(file, made);
    try {
      return await made;
    } catch (e) {
      this.ramImages.delete(file);
      throw new SandboxError('boot_failed', `cannot load the saved RAM image ${file}: ${(e as Error).message}`);
    }
  }

  /** Drop the RAM images (VMs already restored keep their own references). */
  close(): void {
    const images = [...this.ramImages.values()];
    this.ramImages.clear();
    for (const p of images)
      void p.then(
        (img) => img && closeSync(img.fd),
        () => {},
      );
  }

  private async makeRamImage(launcher: string, file: string, ino: number, mtimeMs: number): Promise<RamImage> {
    const child = spawn(launcher, ['--memfd', file], { stdio: ['pipe', 'ignore', 'inherit', 'pipe'] });
    try {
      const report = await new Promise<string>((resolve, reject) => {
        child.once('error', reject);
        const out = child.stdio[3] as Readable;
        out.setEncoding('utf8');
        let text = '';
        out.on('data', (d: string) => {
          text = (text + d).slice(0, 4096);
        });
        out.on('end', () => resolve(text));
        out.on('error', reject);
      });
      const n = /^fd (\d+)$/m.exec(report)?.[1];
      if (!n || !child.pid) throw new Error(report.trim().replace(/^error /, '') || 'the launcher reported nothing');
      // Our own descriptor of the memfd: it stays valid after the holder exits.
      const fd = openSync(`/proc/${child.pid}/fd/${n}`, 'r');
      return { fd, ino, mtimeMs };
    } finally {
      child.stdin?.end();
    }
  }

  private async start(spec: LaunchSpec, accel: 'kvm' | 'tcg', argv: string[], ramFd?: number): Promise<VmHandle> {
    const paths = qemuPaths(spec.dir);
    // The RAM image descriptor lands at RAM_FD in the monitor (and only there).
    const extra = ramFd !== undefined ? [ramFd] : [];
    if (this.jail.level === 'none') {
      const log = openSync(paths.log, 'a');
      // Detached: QEMU outlives a daemon crash so the next daemon can re-adopt or reap it.
      const child = spawn(this.binary, argv, {
        detached: true,
        stdio: ['ignore', log, log, ...(extra.length ? ['ignore' as const, ...extra] : [])],
      });
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
    return this.launchJailed(spec, accel, argv, extra);
  }

  /** Start QEMU through the jail launcher: own uid, namespaces, root and cgroup (see guest/jail/airlock-jail.c). */
  private async launchJailed(
    spec: LaunchSpec,
    accel: 'kvm' | 'tcg',
    argv: string[],
    extra: readonly number[],
  ): Promise<VmHandle> {
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
        // A restore whose RAM is mapped from its image loads no kernel (see argv.ts).
        ...(extra.length ? [] : [spec.kernel, spec.initramfs]),
        spec.packImage,
      ],
      readWrite: [paths.run],
      devices: ['null', 'zero', 'urandom', 'random', ...(accel === 'kvm' ? ['kvm'] : [])],
      cgroupProcs: cg?.procsFiles ?? [],
      // /proc/self/fd/4 is how the monitor opens the inherited RAM image.
      proc: extra.length > 0,
    });
    const log = openSync(paths.log, 'a');
    const [bin, ...rest] = launcherArgv as [string, ...string[]];
    // Detached: the VM outlives a daemon crash so the next daemon can re-adopt or reap it.
    // fd 3 carries the launcher's report: "pid N" (QEMU's host pid) or "error …".
    const child = spawn(bin, [...rest, this.binary, ...argv], {
      detached: true,
      stdio: ['ignore', log, log, 'pipe', ...extra],
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
      saveSnapshot: async (file: string) => {
        // Booted as a snapshot source: its RAM is already a file (argv.ts).
        const ramSource = existsSync(paths.ram) ? paths.ram : undefined;
        await saveQemuState(
          paths.qmp,
          paths.outgoing,
          file,
          typeof record['uid'] === 'number' ? (record['uid'] as number) : undefined,
          ramSource,
        );
        // Make the sealed copy now, in the background, so the first restore need not wait for it.
        if (ramSource && this.jail.level !== 'userns') void this.ramImage(snapshotRamPath(file)).catch(() => {});
      },
    };
  }
}
