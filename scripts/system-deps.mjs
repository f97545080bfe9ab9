#!/usr/bin/env node
// Installs the Debian packages airlock's tests and local product use, when
// missing. As root it runs apt-get; otherwise it names what to install.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Each entry: a file whose presence proves the package, and the package. */
const NEEDED = [
  ['/usr/bin/git', 'git'],
  ['/usr/bin/setpriv', 'util-linux'],
  ['/usr/bin/prlimit', 'util-linux'],
  ['/usr/lib/postgresql/15/bin/postgres', 'postgresql'],
  ['/usr/bin/redis-server', 'redis-server'],
  ['/usr/sbin/nginx', 'nginx'],
  ['/usr/sbin/sshd', 'openssh-server'],
  ['/usr/bin/ping', 'iputils-ping'],
  ['/usr/bin/dig', 'bind9-dnsutils'],
  ['/usr/bin/ss', 'iproute2'],
  ['/usr/bin/top', 'procps'],
  ['/usr/bin/qemu-system-x86_64', 'qemu-system-x86'],
  ['/usr/bin/mksquashfs', 'squashfs-tools'],
  // The initramfs writer's test reads its archive back with cpio(1).
  ['/usr/bin/cpio', 'cpio'],
  ['/usr/bin/musl-gcc', 'musl-tools'],
  ['/usr/bin/lz4', 'lz4'],
  ['/usr/bin/clang', 'clang'],
  ['/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a', 'libclang-rt-14-dev'],
  ['/usr/bin/runsc', 'runsc'],
  ['/usr/bin/chromium', 'chromium'],
  // The installer test verifies the systemd units and lints install.sh.
  ['/usr/bin/systemd-analyze', 'systemd'],
  ['/usr/bin/shellcheck', 'shellcheck'],
];

const missing = [...new Set(NEEDED.filter(([f]) => !existsSync(f)).map(([, p]) => p))];
if (missing.length === 0) process.exit(0);

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (!isRoot) {
  console.error(`[airlock setup] missing Debian packages: ${missing.join(' ')}`);
  console.error(`[airlock setup] install them with: sudo apt-get install -y ${missing.join(' ')}`);
  process.exit(1);
}
console.log(`[airlock setup] installing Debian packages: ${missing.join(' ')} (apt-get)…`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
const install = () =>
  spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { stdio: 'inherit', env }).status;
if (install() !== 0) {
  console.log('[airlock setup] apt-get install failed; refreshing package lists (apt-get update) and retrying…');
  spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
  if (install() !== 0) {
    console.error(`[airlock setup] could not install: ${missing.join(' ')}`);
    process.exit(1);
  }
}
// Debian starts services on install; tests start their own on loopback ports.
for (const svc of ['nginx', 'redis-server', 'postgresql', 'ssh']) {
  spawnSync('service', [svc, 'stop'], { stdio: 'ignore' });
}
