import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { qemuProbeArgv } from './argv.js';

/** Result of deciding between KVM and TCG. */
export interface KvmProbe {
  readonly kvm: boolean;
  readonly reason: string;
}

export const PROBE_MARKER = 'AIRLOCK-PROBE-OK';

/**
 * Decide whether KVM works by booting a tiny guest with it, not by looking at
 * /dev/kvm: on some hosts the device exists but nested KVM fails (hangs or
 * "emulation failure"). Falls back to TCG with the reason.
 */
export async function probeKvm(qemu: string, kernel: string, initramfs: string, timeoutMs = 15_000): Promise<KvmProbe> {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return {
      kvm: false,
      reason: 'no usable /dev/kvm: guests run under TCG software emulation (boot ~2–3 s, code several times slower)',
    };
  }
  return new Promise((resolve) => {
    const child = spawn(qemu, qemuProbeArgv(kernel, initramfs), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let settled = false;
    const finish = (r: KvmProbe) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(r);
    };
    const timer = setTimeout(
      () => finish({ kvm: false, reason: `KVM probe boot did not finish in ${timeoutMs} ms: using TCG` }),
      timeoutMs,
    );
    const onData = (d: Buffer) => {
      out = (out + d.toString('latin1')).slice(-8192);
      if (out.includes(PROBE_MARKER)) finish({ kvm: true, reason: 'KVM probe boot succeeded' });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (e) => finish({ kvm: false, reason: `KVM probe could not start qemu: ${e.message}` }));
    child.on('exit', () =>
      finish({
        kvm: false,
        reason: `KVM probe guest failed: ${out.trim().split('\n').slice(-2).join(' ') || 'qemu exited'}; using TCG`,
      }),
    );
  });
}

/** The host's TSC frequency in kHz (from /proc/cpuinfo), for the guest kernel under TCG. */
export function hostTscKhz(): number | undefined {
  try {
    const m = /cpu MHz\s*:\s*([\d.]+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return m?.[1] ? Math.round(Number(m[1]) * 1000) : undefined;
  } catch {
    return undefined;
  }
}
