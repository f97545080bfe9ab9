import type { Connector } from '../guest/channel.js';
import type { JailLevel, JailProperty } from '../jail/jail.js';

/** How strong the boundary between guest code and the host kernel is. */
export type IsolationLevel = 'microvm' | 'user-space-kernel';

/** What a backend found when probing this host. */
export interface BackendStatus {
  readonly name: BackendName;
  readonly available: boolean;
  /** Why not available, or what limits it (e.g. "no KVM: TCG software emulation, ~10× slower boot"). */
  readonly reason?: string;
  readonly isolation: IsolationLevel;
  readonly kvm: boolean;
  /** The accelerator or platform in use: `kvm`, `tcg`, `ptrace`, … */
  readonly accel: string;
  readonly binary?: string;
  readonly version?: string;
  /** The host-side jail around the VM monitor and which of its properties are in effect. */
  readonly jail?: { readonly level: JailLevel; readonly reason: string; readonly properties: readonly JailProperty[] };
}

/** The backends airlock knows. */
export type BackendName = 'qemu' | 'gvisor' | 'firecracker';

/** Everything needed to start one sandbox's VM. */
export interface LaunchSpec {
  readonly id: string;
  /** Per-sandbox runtime directory (sockets, logs, the adoption record). */
  readonly dir: string;
  readonly kernel: string;
  readonly initramfs: string;
  /** The language pack's squashfs image. */
  readonly packImage: string;
  readonly packName: string;
  readonly memoryMb: number;
  readonly vcpus: number;
  /** Size of the writable tmpfs layer inside the guest. */
  readonly rwMb: number;
  /**
   * Start from this snapshot (a saved VM state of the same pack, RAM and vCPUs)
   * instead of booting; only for backends whose handles offer `saveSnapshot`.
   */
  readonly restoreFrom?: string;
  /** This VM boots only to be saved (`saveSnapshot`): backends may lay out its RAM for cheap restores. */
  readonly snapshotSource?: boolean;
}

/** What a backend writes so a restarted daemon can find (and re-adopt or kill) the VM. */
export interface AdoptRecord {
  readonly backend: BackendName;
  readonly id: string;
  readonly pid: number;
  /** Process start time (clock ticks since boot, /proc/PID/stat field 22): guards against pid reuse. */
  readonly startTime: number;
  readonly [key: string]: unknown;
}

/** A running VM (or gVisor sandbox) as the manager sees it. */
export interface VmHandle {
  readonly pid: number;
  /** Opens a fresh stream to the guest's control channel. */
  readonly connect: Connector;
  /** Resolves when the VM monitor process has exited, with a description. */
  readonly exited: Promise<string>;
  /** What the guest printed on its console (bounded tail). */
  bootLog(): Promise<string>;
  /** Stop the VM for good and free what it holds; idempotent. */
  kill(): Promise<void>;
  /** Freeze the guest's vCPUs without killing it: fault-injection tests of hang detection. */
  freezeForTest?(): Promise<void>;
  /**
   * Pause the VM and write its whole state to `file` (the VM stays paused; the
   * caller kills it). Offered by backends that can restore (`LaunchSpec.restoreFrom`).
   */
  saveSnapshot?(file: string): Promise<void>;
  readonly record: AdoptRecord;
}

/** One implementation of the sandbox seam (qemu, gvisor, firecracker). */
export interface Backend {
  readonly name: BackendName;
  probe(): Promise<BackendStatus>;
  launch(spec: LaunchSpec): Promise<VmHandle>;
  /** Re-attach to a VM a previous daemon started; undefined when it is gone or not ours. */
  adopt(record: AdoptRecord, dir: string): Promise<VmHandle | undefined>;
  /** Free host resources a reaped (not re-adopted) VM left behind, e.g. its host cgroup. */
  cleanup?(record: AdoptRecord): void;
  /** Release what the backend holds for the daemon's lifetime (e.g. restored VMs' RAM images). */
  close?(): void;
}
