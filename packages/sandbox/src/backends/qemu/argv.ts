import { join } from 'node:path';
import type { LaunchSpec } from '../types.js';

/** Accelerator choice for one VM. */
export interface Accel {
  readonly kind: 'kvm' | 'tcg';
  /** TSC frequency for the guest kernel under TCG (kHz), from the host. */
  readonly tscKhz?: number;
}

/**
 * Paths of one QEMU sandbox inside its runtime directory. The sockets live in
 * `run/`, the only directory the jailed monitor may write (and the only one of
 * the runtime directory it sees); the log and the adoption record stay outside it.
 */
export function qemuPaths(dir: string): {
  run: string;
  ctl: string;
  qmp: string;
  incoming: string;
  outgoing: string;
  log: string;
  jailRoot: string;
  ram: string;
} {
  const run = join(dir, 'run');
  return {
    run,
    ram: join(run, 'ram'),
    ctl: join(run, 'ctl.sock'),
    qmp: join(run, 'qmp.sock'),
    incoming: join(run, 'in.sock'),
    outgoing: join(run, 'out.sock'),
    log: join(dir, 'qemu.log'),
    jailRoot: join(dir, 'jail'),
  };
}

/**
 * The one place a QEMU command line is built (issue 10 wraps this argv in a
 * jail; keep every flag here). What each part guarantees:
 * - `-M microvm` with `-nodefaults`: no PCI bus, no NIC, no USB, no display —
 *   the guest has exactly the devices listed below. There is no network device
 *   and no shared host directory (no 9p/virtiofs), by construction.
 * - the pack image is attached read-only; the guest's writes go to a tmpfs.
 * - the console goes to a 64 KiB QEMU ring buffer, so a guest writing to it
 *   forever cannot fill the host's disk or block the VM.
 * - `-sandbox on,…` turns on QEMU's own seccomp filter (no spawning, no
 *   privilege changes) as defence in depth.
 */
export function qemuArgv(spec: LaunchSpec, accel: Accel, restoreRam?: string): string[] {
  const p = qemuPaths(spec.dir);
  // Guest RAM of a snapshot's source VM is a file shared with QEMU (written through), so the
  // saved state can leave RAM out (x-ignore-shared). A restore maps that image privately
  // (share=off): pages stay shared with every other clone and the host page cache until the
  // guest writes them, so a restore reads no RAM and an idle clone costs little memory.
  const ram =
    spec.restoreFrom && restoreRam
      ? [`mem-path=${restoreRam}`, 'share=off']
      : spec.snapshotSource
        ? [`mem-path=${p.ram}`, 'share=on']
        : undefined;
  const memory = ram ? ['-object', ['memory-backend-file', 'id=ram', `size=${spec.memoryMb}M`, ...ram].join(',')] : [];
  // A restore takes the device state over a Unix socket in run/ (QEMU 7.2 has no file:
  // URI, and exec: would need the spawning that -sandbox forbids). `defer`: the migration
  // capability x-ignore-shared is set over QMP before the stream is accepted.
  const incoming = spec.restoreFrom ? ['-incoming', restoreRam ? 'defer' : `unix:${p.incoming}`] : [];
  // A restored guest's kernel is in the saved RAM: loading the kernel image again would only
  // cost time and host memory (the firmware it would reset into never runs).
  const restoring = spec.restoreFrom !== undefined && restoreRam !== undefined;
  const cmdline = [
    'console=ttyS0',
    'quiet',
    'panic=-1',
    'oops=panic',
    `airlock.rw_mb=${spec.rwMb}`,
    `airlock.id=${spec.id}`,
  ];
  // Under TCG the kernel's TSC calibration against the PIT races with host load and can
  // leave the guest without a clock (hangs at boot); telling it the frequency avoids that.
  if (accel.kind === 'tcg' && accel.tscKhz) cmdline.push(`tsc_early_khz=${accel.tscKhz}`);
  // biome-ignore format: flag/value pairs read best on one line each
  return [
    '-name', `airlock-${spec.id},process=airlock-${spec.id}`,
    '-M', ram ? 'microvm,pit=on,memory-backend=ram' : 'microvm,pit=on',
    ...memory,
    '-cpu', accel.kind === 'kvm' ? 'host' : 'max',
    '-accel', accel.kind === 'kvm' ? 'kvm' : 'tcg,tb-size=32',
    '-m', String(spec.memoryMb),
    '-smp', String(spec.vcpus),
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    '-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
    ...(restoring ? [] : ['-kernel', spec.kernel, '-initrd', spec.initramfs, '-append', cmdline.join(' ')]),
    '-chardev', 'ringbuf,id=con,size=65536',
    '-serial', 'chardev:con',
    '-drive', `id=pack,file=${spec.packImage},if=none,format=raw,readonly=on`,
    '-device', 'virtio-blk-device,drive=pack',
    '-device', 'virtio-serial-device,max_ports=2',
    '-chardev', `socket,id=ctl,path=${p.ctl},server=on,wait=off`,
    '-device', 'virtserialport,chardev=ctl,name=airlock.ctl',
    '-qmp', `unix:${p.qmp},server=on,wait=off`,
    ...incoming,
  ];
}

/** Command line for the KVM probe: the kernel and initramfs only, PID 1 prints a marker and powers off. */
export function qemuProbeArgv(kernel: string, initramfs: string): string[] {
  // biome-ignore format: flag/value pairs read best on one line each
  return [
    '-M', 'microvm,pit=on', '-cpu', 'host', '-accel', 'kvm', '-m', '128', '-smp', '1',
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot', '-serial', 'stdio',
    '-kernel', kernel, '-initrd', initramfs, '-append', 'console=ttyS0 quiet panic=-1 airlock.probe',
  ];
}
