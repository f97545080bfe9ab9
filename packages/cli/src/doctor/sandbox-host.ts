import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { join } from 'node:path';
import { type CheckResult, type DoctorContext, ok, warn } from './check.js';

/** First line of `BINARY --version`, or undefined when it does not run. */
function versionOf(binary: string): string | undefined {
  const r = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? (r.stdout.split('\n')[0] ?? '').trim() : undefined;
}

/** Which sandbox backends can run here: QEMU (the default), gVisor, Firecracker. */
export function checkBackends(): CheckResult[] {
  const qemu = versionOf('qemu-system-x86_64');
  const runsc = versionOf('runsc');
  const fc = versionOf('firecracker');
  const out: CheckResult[] = [
    qemu !== undefined
      ? ok('backend qemu', qemu)
      : warn(
          'backend qemu',
          'qemu-system-x86_64 not found',
          'apt-get install qemu-system-x86 (needed for sandboxes on this host)',
        ),
    runsc !== undefined
      ? ok('backend gvisor', `${runsc} (user-space kernel: a weaker boundary than a VM)`)
      : ok('backend gvisor', 'runsc not installed (optional; apt-get install runsc)'),
    fc !== undefined
      ? ok('backend firecracker', `${fc} (needs KVM)`)
      : ok('backend firecracker', 'not installed (optional; needs KVM; not packaged in Debian 12)'),
  ];
  return out;
}

/**
 * KVM usable: a device that opens is not enough (nested KVM can exist and still fail), so
 * with guest images present this boots a tiny guest under KVM, as the daemon does at start.
 */
export async function checkKvm(
  ctx: DoctorContext,
  images: { kernel: string; initramfs: string } | undefined,
): Promise<CheckResult> {
  const tcg =
    'sandboxes still work under TCG software emulation (boot ~2-3 s, code several times slower); isolation is unchanged';
  if (!existsSync('/dev/kvm')) {
    return warn(
      'kvm',
      'no /dev/kvm on this host',
      `enable virtualisation (VT-x/AMD-V, nested KVM on a VM) for speed; ${tcg}`,
    );
  }
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return warn(
      'kvm',
      '/dev/kvm exists but this user cannot open it',
      `add the service user to the "kvm" group; ${tcg}`,
    );
  }
  if (images === undefined) {
    return warn(
      'kvm',
      '/dev/kvm opens, but no guest images to prove it with a probe boot',
      'run "airlock sandbox images build", then doctor again',
    );
  }
  if (!ctx.probeKvm)
    return warn('kvm', '/dev/kvm opens; probe boot skipped (--quick)', 'run without --quick to boot a probe guest');
  const { probeKvm } = await import('@airlock/sandbox');
  const p = await probeKvm('qemu-system-x86_64', images.kernel, images.initramfs);
  return p.kvm
    ? ok('kvm', p.reason)
    : warn('kvm', p.reason, `check nested virtualisation and dmesg for KVM errors; ${tcg}`);
}

/** The sandbox daemon can create the per-sandbox cgroup it puts each VM monitor in. */
export async function checkCgroups(): Promise<CheckResult> {
  const { createCgroup, detectCgroups } = await import('@airlock/sandbox');
  const layout = detectCgroups();
  if (layout.version === 'none') {
    return warn(
      'cgroups',
      layout.reason ?? 'no usable cgroup hierarchy',
      'mount cgroup v2 with cpu, memory and pids (or v1 hierarchies); without them sandboxes have no host-side CPU/memory/pids limits',
    );
  }
  const name = `doctor-${process.pid}`;
  try {
    // Exactly what the daemon does for a sandbox, with small limits, then removed.
    const cg = createCgroup(layout, name, { cpus: 0.5, memoryBytes: 64 * 2 ** 20, pids: 16 });
    cg.remove();
    return ok(
      'cgroups',
      `${layout.version}: created and removed a test group under ${join(Object.values(layout.mounts)[0] ?? '', 'airlock')}`,
    );
  } catch (e) {
    return warn(
      'cgroups',
      `${layout.version}: cannot create a group: ${(e as Error).message}`,
      'run the sandbox daemon as root or with a delegated cgroup (the airlock-sandbox unit sets Delegate=yes)',
    );
  }
}

/** Guest images are built and their checksums match the manifest. */
export async function checkImages(
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ result: CheckResult; images?: { kernel: string; initramfs: string } }> {
  const { imageCacheDir, readManifest, verifyImages } = await import('@airlock/sandbox');
  const dir = imageCacheDir(env);
  const m = readManifest(dir);
  if (m === undefined) {
    return {
      result: warn(
        'images',
        `none in ${dir}`,
        'run "airlock sandbox images build" (needed for sandboxes; takes a few minutes)',
      ),
    };
  }
  try {
    await verifyImages(dir, m);
  } catch (e) {
    return { result: warn('images', (e as Error).message, 'rebuild: "airlock sandbox images build --force"') };
  }
  return {
    result: ok(
      'images',
      `${dir}: kernel ${m.kernel.version}, packs ${Object.keys(m.packs).join(', ')}; checksums verified`,
    ),
    images: { kernel: join(dir, m.kernel.path), initramfs: join(dir, m.initramfs.path) },
  };
}
