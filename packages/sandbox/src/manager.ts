import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { freemem, totalmem } from 'node:os';
import { join } from 'node:path';
import { AIRLOCK_VERSION } from '@airlock/core';
import { killIfOurs, processAlive } from './backends/process-util.js';
import { createBackend } from './backends/select.js';
import type { AdoptRecord, Backend, BackendName, BackendStatus, VmHandle } from './backends/types.js';
import type { EgressDaemonConfig } from './egress/session.js';
import {
  type EgressDaemonOptions,
  type EgressRequest,
  egressDaemonConfig,
  egressDaemonOptions,
  enableEgress,
} from './egress/setup.js';
import { SandboxError, toSandboxError } from './errors.js';
import { GuestChannel } from './guest/channel.js';
import { buildImages, type Progress } from './images/builder.js';
import { type ImageManifest, readManifest, verifyImages } from './images/manifest.js';
import type { JailOptions } from './jail/jail.js';
import {
  type DaemonLimits,
  daemonLimitsFromEnv,
  describeDaemonLimits,
  execCeilings,
  type LimitRequest,
  resolveLimits,
} from './limits.js';
import { guestSourceDir, imageCacheDir, sandboxStateDir } from './paths.js';
import { Sandbox, type SandboxLimits } from './sandbox.js';
import { readSavedRecord, writeSavedRecord } from './state-records.js';

/** Daemon-wide settings. Every field has a default fit for this TCG machine. */
export interface ManagerOptions {
  readonly imageDir?: string;
  readonly stateDir?: string;
  readonly backend?: BackendName;
  /** Force the QEMU accelerator instead of probing. */
  readonly accel?: 'kvm' | 'tcg';
  /** Build missing images on start (with progress) instead of failing with `image_missing`. */
  readonly buildImages?: boolean;
  readonly progress?: Progress;
  readonly bootTimeoutMs?: number;
  readonly heartbeatMs?: number;
  readonly heartbeatTimeoutMs?: number;
  readonly maxSandboxes?: number;
  /** Shorthand for `limits.defaults.memory_mb`. */
  readonly defaultMemoryMb?: number;
  /**
   * Daemon-wide per-sandbox limits: defaults for a create that names none and
   * the maximum a create may name (see limits.ts). Default: `$AIRLOCK_SANDBOX_LIMITS`
   * (JSON), else the built-in defaults and bounds.
   */
  readonly limits?: Partial<DaemonLimits>;
  /**
   * Pre-booted sandboxes kept ready per language pack (default 0). A create
   * with default limits takes one and returns at once; the pool refills in the
   * background, one boot at a time. Each costs an idle VM's memory.
   */
  readonly warmPool?: number;
  /** Packs the warm pool serves (default: every pack). */
  readonly warmPacks?: readonly string[];
  /**
   * Start sandboxes from a saved VM state instead of booting (backends that can:
   * qemu). The state of each pack × RAM × vCPUs is saved once, in the background,
   * after its first boot, under `STATE_DIR/.snapshots`. Default true.
   */
  readonly snapshots?: boolean;
  /**
   * The host-side jail around each VM monitor (qemu backend): `mode: 'auto'`
   * (default) applies everything this host allows, `'off'` none.
   */
  readonly jail?: JailOptions;
  /** Log lines for the operator (never guest output). */
  readonly log?: (line: string) => void;
  /** Opt-in egress per sandbox (see egress/setup.ts): available unless `enabled: false`. */
  readonly egress?: EgressDaemonOptions;
}

/** Create request after validation. */
export interface CreateRequest {
  readonly language_pack: string;
  readonly memory_mb?: number | undefined;
  readonly vcpus?: number | undefined;
  readonly lifetime_s?: number | undefined;
  readonly rw_mb?: number | undefined;
  /** Default and ceiling of every exec's timeout in this sandbox. */
  readonly exec_timeout_ms?: number | undefined;
  /** Default and ceiling of every exec's output cap in this sandbox. */
  readonly max_output_bytes?: number | undefined;
  /** Guest processes and threads at once. */
  readonly max_procs?: number | undefined;
  readonly env?: Readonly<Record<string, string>> | undefined;
  /** Egress allowlist and secrets; absent or false: no egress. */
  readonly egress?: boolean | EgressRequest | undefined;
}

const RECORD = 'record.json';

/**
 * Owns every sandbox of one daemon: boots them through a backend, watches
 * them (VM exit, lost channel, missed heartbeats → `failed` and freed), and
 * on start finds the VMs a previous daemon left behind and re-adopts or kills them.
 */
export class SandboxManager {
  private readonly sandboxes = new Map<string, Sandbox>();
  private readonly timers = new Map<string, NodeJS.Timeout[]>();
  private readonly pool = new Map<string, Sandbox[]>();
  /** Sandboxes destroyed by their lifetime, so later calls say so (bounded; oldest forgotten first). */
  private readonly expired = new Map<string, Date>();
  private readonly daemonLimits: DaemonLimits;
  /** Snapshot keys being saved, and the queue that saves them one at a time. */
  private readonly snapshotting = new Set<string>();
  private snapshotQueue: Promise<void> = Promise.resolve();
  /** Creates booting right now, and the memory they will take. */
  private booting = 0;
  private bootingBytes = 0;
  private filling: Promise<void> | undefined;
  private closed = false;
  private readonly egressOpts: ReturnType<typeof egressDaemonOptions>;
  private egressShared: EgressDaemonConfig | undefined;

  private constructor(
    private readonly opts: ManagerOptions,
    readonly manifest: ImageManifest,
    private readonly imageDir: string,
    private readonly stateDir: string,
    private readonly backend: Backend,
    readonly status: BackendStatus,
  ) {
    const given = opts.limits ?? daemonLimitsFromEnv() ?? {};
    this.daemonLimits = {
      defaults: {
        ...(opts.defaultMemoryMb !== undefined ? { memory_mb: opts.defaultMemoryMb } : {}),
        ...given.defaults,
      },
      max: { ...given.max },
    };
    // Fail at start, not at the first create, when the defaults exceed the maximums.
    resolveLimits({}, this.daemonLimits);
    this.egressOpts = egressDaemonOptions(opts.egress);
  }

  /** Check images and backend, then re-adopt or clean up what a previous daemon left. */
  static async open(opts: ManagerOptions = {}): Promise<SandboxManager> {
    const imageDir = opts.imageDir ?? imageCacheDir();
    const stateDir = opts.stateDir ?? sandboxStateDir();
    let manifest = readManifest(imageDir);
    // With building allowed and the recipes at hand, images stale against them are rebuilt
    // (a no-op when the recorded recipe hash matches).
    if (opts.buildImages && existsSync(guestSourceDir())) {
      manifest = await buildImages({ cacheDir: imageDir, ...(opts.progress ? { progress: opts.progress } : {}) });
    }
    if (!manifest) {
      if (!opts.buildImages)
        throw new SandboxError('image_missing', `no guest images in ${imageDir}; run "airlock sandbox images build"`);
      manifest = await buildImages({ cacheDir: imageDir, ...(opts.progress ? { progress: opts.progress } : {}) });
    }
    await verifyImages(imageDir, manifest);
    if (totalmem() < 512 * 2 ** 20)
      throw new SandboxError(
        'backend_unavailable',
        `insufficient memory: ${Math.round(totalmem() / 2 ** 20)} MiB total, at least 512 MiB needed`,
      );
    const backend = createBackend(opts.backend ?? 'qemu', {
      kernel: join(imageDir, manifest.kernel.path),
      initramfs: join(imageDir, manifest.initramfs.path),
      imageDir,
      ...(opts.accel ? { accel: opts.accel } : {}),
      ...(manifest.jail ? { launcher: join(imageDir, manifest.jail.path) } : {}),
      ...(opts.jail ? { jail: opts.jail } : {}),
    });
    const status = await backend.probe();
    if (!status.available)
      throw new SandboxError(
        'backend_unavailable',
        `${status.name} backend unavailable: ${status.reason ?? 'unknown reason'}`,
      );
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    claimStateDir(stateDir);
    const m = new SandboxManager(opts, manifest, imageDir, stateDir, backend, status);
    m.pruneSnapshots();
    await m.recover();
    m.fillPool();
    return m;
  }

  private log(line: string): void {
    this.opts.log?.(line);
  }

  /** Sandboxes found on disk from an earlier daemon: re-adopt live ones that answer, reap the rest. */
  private async recover(): Promise<void> {
    let entries: string[] = [];
    try {
      entries = readdirSync(this.stateDir);
    } catch {
      return;
    }
    for (const id of entries) {
      if (!/^sb_[0-9a-f]{12}$/.test(id)) continue; // the owner file, or something not ours
      const dir = join(this.stateDir, id);
      const saved = readSavedRecord(join(dir, RECORD));
      // A pooled VM nobody was given is cheaper to reboot than to account for: reap it.
      const adoptable = saved !== undefined && saved.record.backend === this.backend.name && !saved.warm;
      const handle = saved && adoptable ? await this.backend.adopt(saved.record, dir) : undefined;
      if (!saved || !handle) {
        if (saved) this.killRecord(saved.record);
        rmSync(dir, { recursive: true, force: true });
        this.log(`removed stale sandbox ${id}`);
        continue;
      }
      const channel = new GuestChannel(handle.connect);
      try {
        await channel.handshake(Date.now() + 10_000);
      } catch {
        channel.close();
        await handle.kill();
        rmSync(dir, { recursive: true, force: true });
        this.log(`sandbox ${id} did not answer after restart: killed`);
        continue;
      }
      const pack = this.manifest.packs[saved.pack];
      const sb = new Sandbox(
        id,
        saved.pack,
        pack?.run ?? ['/bin/sh', '-c'],
        saved.limits,
        saved.env,
        handle,
        channel,
        this.backendInfo(),
        new Date(saved.createdAt),
      );
      sb.state = 'running';
      sb.readyAt = new Date();
      this.watch(sb);
      this.sandboxes.set(id, sb);
      this.log(`re-adopted sandbox ${id} (pid ${handle.pid})`);
    }
  }

  private killRecord(r: AdoptRecord): void {
    // Only a process that is still the one recorded (pid and start time) is killed.
    killIfOurs(r.pid, r.startTime);
    this.backend.cleanup?.(r);
  }

  private backendInfo(): { name: string; isolation: string; kvm: boolean } {
    return { name: this.status.name, isolation: this.status.isolation, kvm: this.status.kvm };
  }

  /** Daemon facts for `GET /info` and `airlock sandbox doctor`. */
  info(): Record<string, unknown> {
    return {
      name: 'airlock-sandbox',
      version: AIRLOCK_VERSION,
      api: 'emberd-compatible superset',
      backend: this.status.name,
      isolation: this.status.isolation,
      kvm: this.status.kvm,
      accel: this.status.accel,
      backend_note: this.status.reason ?? null,
      jail: this.status.jail ?? {
        level: 'none',
        reason: `${this.status.name} backend has no host-side jail`,
        properties: [],
      },
      packs: Object.entries(this.manifest.packs).map(([name, p]) => ({ name, description: p.description })),
      kernel: { package: this.manifest.kernel.package, version: this.manifest.kernel.version },
      limits: {
        max_sandboxes: this.maxSandboxes(),
        ...describeDaemonLimits(this.daemonLimits),
      },
      sandboxes: this.sandboxes.size,
      warm_pool: { size: this.opts.warmPool ?? 0, ready: this.warmCounts() },
      snapshots: { enabled: this.snapshotsOn(), saved: this.snapshotCount() },
      egress: {
        enabled: this.egressOpts.enabled,
        resolver: this.egressOpts.dnsServers ? this.egressOpts.dnsServers : 'system',
      },
    };
  }

  private maxSandboxes(): number {
    return this.opts.maxSandboxes ?? 16;
  }

  /** Resolve a request's limits against the daemon's defaults and maximums (`invalid_request` above a maximum). */
  private limitsFor(req: LimitRequest): SandboxLimits {
    return { ...resolveLimits(req, this.daemonLimits), ...execCeilings(req, this.daemonLimits) };
  }

  /**
   * Give the guest its per-sandbox settings: process limit, writable-layer
   * size (when it differs from what it booted with), the wall clock and fresh
   * entropy. Run on every hand-out, so a pooled or restored guest is as fresh as a cold one.
   */
  private async configure(sb: Sandbox, bootedRwMb: number): Promise<void> {
    await sb.channel.configure({
      maxProcs: sb.limits.max_procs ?? 0,
      rwMb: sb.restored || sb.limits.rw_mb !== bootedRwMb ? sb.limits.rw_mb : 0,
      timeMs: Date.now(),
      entropy: randomBytes(64),
    });
  }

  /** Boot a sandbox; resolves only once its guest answers on the control channel. */
  async create(req: CreateRequest): Promise<Sandbox> {
    if (this.closed) throw new SandboxError('backend_unavailable', 'daemon is shutting down');
    const pack = this.manifest.packs[req.language_pack];
    if (!pack) {
      throw new SandboxError(
        'unknown_language_pack',
        `language_pack "${req.language_pack}" is not built (known: ${Object.keys(this.manifest.packs).join(', ')})`,
      );
    }
    // Failed sandboxes hold no VM; live ones and those still booting count against the limit
    // (concurrent creates must not all pass the check before the first boot finishes).
    if (this.list().filter((s) => s.state !== 'failed').length + this.booting >= this.maxSandboxes())
      throw new SandboxError('capacity_exceeded', `at most ${this.maxSandboxes()} sandboxes at once`);
    const limits = this.limitsFor(req);
    const env = req.env ?? {};
    const egress = typeof req.egress === 'object' ? req.egress : undefined;
    if (egress && !this.egressOpts.enabled)
      throw new SandboxError('invalid_request', 'egress: disabled on this daemon (AIRLOCK_SANDBOX_EGRESS=off)');
    // Egress sandboxes skip the warm pool: they boot (or restore) fresh and get their proxy at create.
    const warm = egress ? undefined : this.takeWarm(req.language_pack, limits);
    if (warm) {
      const pooled = warm.limits;
      warm.env = env;
      warm.limits = limits;
      try {
        // The pool configured it (clock, entropy, its limits) when it was filled: only
        // limits that differ need another round trip, so a hand-out stays in the host.
        if (limits.max_procs !== pooled.max_procs || limits.rw_mb !== pooled.rw_mb)
          await this.configure(warm, pooled.rw_mb);
      } catch (e) {
        await this.discard(warm);
        this.fillPool();
        throw toSandboxError(e);
      }
      this.writeRecord(warm, false);
      this.sandboxes.set(warm.id, warm);
      this.armLifetime(warm);
      this.log(`created ${warm.id} (${req.language_pack}) from the warm pool`);
      // After the answer: starting the refill (cgroup, spawn) is synchronous work a caller need not wait for.
      setImmediate(() => this.fillPool());
      return warm;
    }
    // The QEMU process needs the guest's RAM plus ~100 MiB of its own (TCG buffer, kernel image),
    // and so does every boot already in flight (its memory is not taken yet).
    const need = (limits.memory_mb + 128) * 2 ** 20 + this.bootingBytes;
    if (freemem() < need) {
      throw new SandboxError(
        'capacity_exceeded',
        `insufficient memory: ${Math.round(freemem() / 2 ** 20)} MiB free, sandbox needs about ${limits.memory_mb + 128} MiB`,
      );
    }
    const reserve = (limits.memory_mb + 128) * 2 ** 20;
    this.booting++;
    this.bootingBytes += reserve;
    let sb: Sandbox;
    try {
      sb = await this.boot(req.language_pack, limits, env, false);
    } finally {
      this.booting--;
      this.bootingBytes -= reserve;
    }
    try {
      await this.configure(sb, limits.rw_mb);
      if (egress) {
        this.egressShared ??= egressDaemonConfig(this.egressOpts);
        await enableEgress(sb, egress, this.egressShared, this.egressOpts.onEvent);
      }
    } catch (e) {
      await this.discard(sb);
      throw toSandboxError(e);
    }
    this.sandboxes.set(sb.id, sb);
    this.armLifetime(sb);
    this.log(`created ${sb.id} (${req.language_pack}) in ${sb.bootMs} ms`);
    return sb;
  }

  private writeRecord(sb: Sandbox, warm: boolean): void {
    writeSavedRecord(join(this.stateDir, sb.id, RECORD), {
      record: sb.vm.record,
      pack: sb.pack,
      limits: sb.limits,
      env: sb.env,
      createdAt: sb.createdAt.toISOString(),
      warm,
    });
  }

  private snapshotDir(): string {
    return join(this.stateDir, '.snapshots');
  }

  private snapshotsOn(): boolean {
    return this.opts.snapshots !== false && this.backend.name === 'qemu';
  }

  /** The saved state for a pack × RAM × vCPUs of these images and accelerator. */
  private snapshotFile(pack: string, limits: SandboxLimits): string {
    const key = `${pack}-${limits.memory_mb}m-${limits.vcpus}c-${this.manifest.recipeHash.slice(0, 12)}-${this.status.accel}`;
    return join(this.snapshotDir(), `${key}.vmstate`);
  }

  /** Saved states of other image builds are useless: remove them. */
  private pruneSnapshots(): void {
    const dir = this.snapshotDir();
    let files: string[] = [];
    try {
      files = readdirSync(dir);
    } catch {
      return;
    }
    const hash = this.manifest.recipeHash.slice(0, 12);
    for (const f of files) if (!f.includes(`-${hash}-`)) rmSync(join(dir, f), { force: true });
  }

  /** Saved states on disk (for tests and `GET /info`). */
  snapshotCount(): number {
    try {
      return readdirSync(this.snapshotDir()).filter((f) => f.endsWith('.vmstate')).length;
    } catch {
      return 0;
    }
  }

  /**
   * Save the state of a freshly booted guest of this kind, once, in the
   * background: a dedicated VM that never runs code is booted, paused, saved
   * and killed. Later boots of the kind restore it instead.
   */
  private scheduleSnapshot(pack: string, limits: SandboxLimits): void {
    if (!this.snapshotsOn() || this.closed) return;
    const file = this.snapshotFile(pack, limits);
    if (existsSync(file) || this.snapshotting.has(file)) return;
    this.snapshotting.add(file);
    this.snapshotQueue = this.snapshotQueue
      .then(async () => {
        if (this.closed) return;
        mkdirSync(this.snapshotDir(), { recursive: true, mode: 0o700 });
        const sb = await this.boot(pack, limits, {}, true, false);
        try {
          if (!sb.vm.saveSnapshot) return;
          const tmp = `${file}.tmp-${process.pid}`;
          const t = Date.now();
          await sb.vm.saveSnapshot(tmp);
          renameSync(tmp, file);
          this.log(`saved the ${pack} VM state for fast creates in ${Date.now() - t} ms`);
        } finally {
          await this.discard(sb);
        }
      })
      .catch((e: unknown) => this.log(`saving a ${pack} VM state failed: ${(e as Error).message}`))
      .finally(() => this.snapshotting.delete(file));
  }

  /** Boot, or restore from a saved state when one exists (falling back to a boot if it fails). */
  private async boot(
    packName: string,
    limits: SandboxLimits,
    env: Readonly<Record<string, string>>,
    warm: boolean,
    restore = true,
  ): Promise<Sandbox> {
    const file = this.snapshotFile(packName, limits);
    if (restore && this.snapshotsOn() && existsSync(file)) {
      try {
        const sb = await this.bootOnce(packName, limits, env, warm, file);
        sb.restored = true;
        return sb;
      } catch (e) {
        // A slow restore on a busy host says nothing about the state; anything else may be its fault.
        const timeout = e instanceof SandboxError && e.code === 'boot_timeout';
        this.log(
          `restoring ${file} failed (${(e as Error).message}): booting instead${timeout ? '' : ', state discarded'}`,
        );
        if (!timeout) rmSync(file, { force: true });
      }
    }
    // restore=false is the snapshot's own source VM: booted to be saved.
    const sb = await this.bootOnce(packName, limits, env, warm, undefined, !restore);
    if (restore) this.scheduleSnapshot(packName, limits);
    return sb;
  }

  private async bootOnce(
    packName: string,
    limits: SandboxLimits,
    env: Readonly<Record<string, string>>,
    warm: boolean,
    restoreFrom: string | undefined,
    snapshotSource = false,
  ): Promise<Sandbox> {
    const pack = this.manifest.packs[packName];
    if (!pack) throw new SandboxError('unknown_language_pack', `language_pack "${packName}" is not built`);
    const id = `sb_${randomBytes(6).toString('hex')}`;
    const dir = join(this.stateDir, id);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const started = Date.now();
    let handle: VmHandle;
    try {
      handle = await this.backend.launch({
        id,
        dir,
        kernel: join(this.imageDir, this.manifest.kernel.path),
        initramfs: join(this.imageDir, this.manifest.initramfs.path),
        packImage: join(this.imageDir, pack.path),
        packName,
        memoryMb: limits.memory_mb,
        vcpus: limits.vcpus,
        rwMb: limits.rw_mb,
        ...(restoreFrom ? { restoreFrom } : {}),
        ...(snapshotSource ? { snapshotSource } : {}),
      });
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw toSandboxError(e);
    }
    const channel = new GuestChannel(handle.connect);
    const sb = new Sandbox(id, packName, pack.run, limits, env, handle, channel, this.backendInfo());
    sb.warm = warm;
    this.writeRecord(sb, warm);
    const timeoutMs = this.opts.bootTimeoutMs ?? (this.status.kvm ? 20_000 : 60_000);
    try {
      await Promise.race([
        channel.handshake(started + timeoutMs).catch((e: unknown) => {
          throw e instanceof SandboxError && e.code === 'boot_timeout'
            ? new SandboxError('boot_timeout', `guest did not become ready within ${timeoutMs} ms`)
            : e;
        }),
        handle.exited.then((why) => {
          throw new SandboxError('boot_failed', `VM exited during boot (${why})`);
        }),
      ]);
    } catch (e) {
      const err = toSandboxError(e);
      const tail = (await handle.bootLog()).trim().split('\n').slice(-5).join(' | ');
      channel.close();
      await handle.kill();
      rmSync(dir, { recursive: true, force: true });
      throw new SandboxError(err.code, tail ? `${err.message}; console: ${tail}` : err.message);
    }
    sb.state = 'running';
    sb.readyAt = new Date();
    sb.bootMs = Date.now() - started;
    this.watch(sb);
    return sb;
  }

  /** A ready pooled sandbox for this pack if one exists and the limits are the pool's. */
  private takeWarm(pack: string, limits: SandboxLimits): Sandbox | undefined {
    // RAM and vCPUs are fixed at boot; the process limit and the writable layer are set at hand-out.
    const want = this.limitsFor({});
    if (limits.memory_mb !== want.memory_mb || limits.vcpus !== want.vcpus) return undefined;
    const list = this.pool.get(pack) ?? [];
    const i = list.findIndex((s) => s.state === 'running');
    if (i < 0) return undefined;
    const [sb] = list.splice(i, 1);
    return sb;
  }

  /** Top up the warm pool, one boot at a time so the host is not swamped. */
  private fillPool(): void {
    const size = this.opts.warmPool ?? 0;
    if (size <= 0 || this.filling || this.closed) return;
    const packs = this.opts.warmPacks ?? Object.keys(this.manifest.packs);
    const next = packs.find((p) => (this.pool.get(p) ?? []).length < size);
    if (!next) return;
    this.filling = this.boot(next, this.limitsFor({}), {}, true)
      .then(async (sb) => {
        if (this.closed) return this.discard(sb);
        try {
          await this.configure(sb, sb.limits.rw_mb);
        } catch (e) {
          await this.discard(sb);
          throw e;
        }
        this.pool.set(next, [...(this.pool.get(next) ?? []), sb]);
      })
      .catch((e: unknown) => this.log(`warm pool: booting a ${next} sandbox failed: ${(e as Error).message}`))
      .finally(() => {
        this.filling = undefined;
        this.fillPool();
      });
  }

  private async discard(sb: Sandbox): Promise<void> {
    this.clearTimers(sb.id);
    sb.state = 'stopping';
    sb.channel.close();
    await sb.vm.kill();
    sb.state = 'deleted';
    rmSync(join(this.stateDir, sb.id), { recursive: true, force: true });
  }

  /** Sandboxes waiting in the warm pool, per pack. */
  warmCounts(): Record<string, number> {
    return Object.fromEntries([...this.pool].map(([k, v]) => [k, v.filter((s) => s.state === 'running').length]));
  }

  /** Mark failed, free the VM; the record stays visible until deleted. */
  private async fail(sb: Sandbox, why: string): Promise<void> {
    if (sb.state !== 'running' && sb.state !== 'starting') return;
    sb.state = 'failed';
    sb.failure = why;
    const pooled = this.pool.get(sb.pack);
    if (pooled?.includes(sb)) {
      this.pool.set(
        sb.pack,
        pooled.filter((s) => s !== sb),
      );
      this.fillPool();
    }
    this.log(`sandbox ${sb.id} failed: ${why}`);
    this.clearTimers(sb.id);
    sb.channel.close();
    await sb.vm.kill();
    rmSync(join(this.stateDir, sb.id), { recursive: true, force: true });
  }

  private watch(sb: Sandbox): void {
    void sb.vm.exited.then((why) => this.fail(sb, `VM exited unexpectedly (${why})`));
    sb.channel.on('lost', (e: SandboxError) => void this.fail(sb, `guest control channel lost: ${e.message}`));
    const timers: NodeJS.Timeout[] = [];
    const every = this.opts.heartbeatMs ?? 5000;
    const timeout = this.opts.heartbeatTimeoutMs ?? 10_000;
    let missed = 0;
    let inFlight = false;
    const hb = setInterval(() => {
      // A channel being re-synchronised is not a hung guest; the reset has its own deadline.
      // Nor is one whose output we paused for a slow download client.
      if (inFlight || sb.state !== 'running' || sb.channel.resettingNow || sb.channel.inputPaused) return;
      inFlight = true;
      sb.channel
        .ping(timeout)
        .then(
          () => {
            missed = 0;
          },
          () => {
            // Two misses in a row: the guest is hung (or its agent is); free the VM.
            if (++missed >= 2)
              void this.fail(sb, `guest stopped answering (${missed} heartbeats of ${timeout} ms missed)`);
          },
        )
        .finally(() => {
          inFlight = false;
        });
    }, every);
    hb.unref();
    timers.push(hb);
    this.timers.set(sb.id, timers);
  }

  private armLifetime(sb: Sandbox): void {
    if (!sb.limits.lifetime_s) return;
    const t = setTimeout(() => {
      this.log(`sandbox ${sb.id} reached its lifetime of ${sb.limits.lifetime_s} s`);
      this.expired.set(sb.id, new Date());
      if (this.expired.size > 1024) this.expired.delete(this.expired.keys().next().value as string);
      void this.delete(sb.id);
    }, sb.limits.lifetime_s * 1000);
    t.unref();
    this.timers.set(sb.id, [...(this.timers.get(sb.id) ?? []), t]);
  }

  private clearTimers(id: string): void {
    for (const t of this.timers.get(id) ?? []) clearTimeout(t);
    this.timers.delete(id);
  }

  /** All sandboxes, newest last. */
  list(): Sandbox[] {
    return [...this.sandboxes.values()];
  }

  /** A sandbox by id; `sandbox_expired` when its lifetime ended it, else `not_found`. */
  get(id: string): Sandbox {
    const sb = this.sandboxes.get(id);
    if (!sb) {
      const at = this.expired.get(id);
      if (at)
        throw new SandboxError(
          'sandbox_expired',
          `sandbox ${id} reached its lifetime and was destroyed at ${at.toISOString()}`,
        );
      throw new SandboxError('not_found', `no sandbox ${id}`);
    }
    return sb;
  }

  /** Destroy a sandbox and everything it held. Idempotent: an unknown id is already deleted. */
  async delete(id: string): Promise<void> {
    const sb = this.sandboxes.get(id);
    if (!sb) return;
    this.sandboxes.delete(id);
    this.clearTimers(id);
    const wasRunning = sb.state === 'running';
    sb.state = 'stopping';
    if (wasRunning) sb.channel.shutdown();
    sb.channel.close();
    // A clean power-off first (it syncs nothing we keep, but lets QEMU exit by itself), then the hammer.
    if (wasRunning) await Promise.race([sb.vm.exited, new Promise((r) => setTimeout(r, 500))]);
    await sb.vm.kill();
    sb.state = 'deleted';
    rmSync(join(this.stateDir, id), { recursive: true, force: true });
    this.log(`deleted ${id}`);
  }

  /** Stop the daemon: every sandbox is destroyed (a crash instead leaves them for re-adoption). */
  async close(): Promise<void> {
    this.closed = true;
    const pooled = [...this.pool.values()].flat();
    this.pool.clear();
    await Promise.all([
      ...[...this.sandboxes.keys()].map((id) => this.delete(id)),
      ...pooled.map((sb) => this.discard(sb)),
    ]);
    await this.filling;
    await this.snapshotQueue;
    this.backend.close?.();
    rmSync(join(this.stateDir, OWNER), { force: true });
  }
}

const OWNER = '.daemon.pid';

/**
 * One daemon per state dir: a second one would re-adopt (or reap) the first
 * one's VMs at start. A live owner refuses; a dead one's claim is taken over.
 */
function claimStateDir(stateDir: string): void {
  const file = join(stateDir, OWNER);
  let owner = 0;
  try {
    owner = Number.parseInt(readFileSync(file, 'utf8'), 10);
  } catch {
    owner = 0;
  }
  if (owner > 0 && owner !== process.pid && processAlive(owner)) {
    throw new SandboxError(
      'backend_unavailable',
      `another sandbox daemon (pid ${owner}) owns ${stateDir}; stop it or use another AIRLOCK_HOME`,
    );
  }
  writeFileSync(file, String(process.pid));
}
