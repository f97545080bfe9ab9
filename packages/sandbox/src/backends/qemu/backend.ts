import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { SandboxError } from '../../errors.js';
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

/** Options for the QEMU backend. */
export interface QemuOptions {
  readonly binary?: string;
  /** Kernel and initramfs for the KVM probe boot. */
  readonly kernel: string;
  readonly initramfs: string;
  /** Force an accelerator instead of probing (`tcg` in tests that must not depend on the host). */
  readonly accel?: 'kvm' | 'tcg';
}

const LOG_TAIL = 64 * 1024;

/**
 * QEMU `-M microvm` backend: one QEMU process per sandbox, guest control over
 * virtio-serial, KVM when a probe boot succeeds, TCG otherwise.
 */
export class QemuBackend implements Backend {
  readonly name = 'qemu' as const;
  private readonly binary: string;
  private kvm: KvmProbe | undefined;

  constructor(private readonly opts: QemuOptions) {
    this.binary = opts.binary ?? '/usr/bin/qemu-system-x86_64';
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
    const log = openSync(paths.log, 'a');
    // Detached: QEMU outlives a daemon crash so the next daemon can re-adopt or reap it.
    const child = spawn(this.binary, qemuArgv(spec, this.accel()), { detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid ?? -1));
      child.once('error', (e) => reject(new SandboxError('boot_failed', `cannot start ${this.binary}: ${e.message}`)));
    });
    child.unref();
    const exited = new Promise<string>((resolve) => {
      child.once('exit', (code, sig) => resolve(sig ? `qemu killed by ${sig}` : `qemu exited with code ${code}`));
    });
    const startTime = processStartTime(pid) ?? 0;
    return this.handle({ backend: 'qemu', id: spec.id, pid, startTime, dir: spec.dir }, spec.dir, exited);
  }

  async adopt(record: AdoptRecord, dir: string): Promise<VmHandle | undefined> {
    // Only a live process with the recorded start time and our sandbox id in its argv is ours.
    if (!processAlive(record.pid, record.startTime)) return undefined;
    if (!processCmdline(record.pid).some((a) => a.includes(`airlock-${record.id}`))) return undefined;
    return this.handle(record, dir, waitForExit(record.pid, record.startTime));
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
    };
  }
}
