import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { SandboxError } from '../errors.js';
import { guestSourceDir, imageCacheDir } from '../paths.js';
import { buildCpio, type CpioEntry } from './cpio.js';
import { builderToolsMissing, debVersion, downloadDeb, extractDeb, resolveMetapackage, runTool } from './debian.js';
import { bzImagePayload } from './kernel.js';
import { type ImageFile, type ImageManifest, MANIFEST_FILE, readManifest, sha256File } from './manifest.js';
import { loadKernelRecipe, loadPackRecipes, type PackRecipe } from './recipes.js';

/** Progress reporting: one call per step, `step` of `total`. */
export type Progress = (step: number, total: number, message: string) => void;

/** Options for {@link buildImages}. */
export interface BuildOptions {
  readonly cacheDir?: string;
  readonly guestDir?: string;
  /** Rebuild even when the manifest matches the recipes. */
  readonly force?: boolean;
  readonly progress?: Progress;
}

// Busybox applets never linked into a guest: there is no network device unless egress
// is opted in, and a sandbox should not ship tools for reaching out.
const NETWORK_APPLETS = new Set(
  'arp arping brctl dnsd dnsdomainname ether-wake fakeidentd ftpd ftpget ftpput httpd ifconfig ifdown ifenslave ifplugd ifup inetd ip ipaddr ipcalc iplink ipneigh iproute iprule iptunnel nameif nbd-client nc netstat nslookup ntpd ping ping6 pscan route sendmail slattach ssl_client tc tcpsvd telnet telnetd tftp tftpd traceroute traceroute6 tunctl udhcpc udhcpc6 udhcpd udpsvd vconfig wget whois zcip popmaildir reformime makemime'.split(
    ' ',
  ),
);

// Parts of Debian packages a sandbox never needs; dropped to keep images small.
const PRUNE = [
  'usr/share/doc',
  'usr/share/man',
  'usr/share/info',
  'usr/share/lintian',
  'usr/share/locale',
  'usr/share/bug',
];

/** Hash of everything an image is built from; a change means a rebuild. */
export function recipeHash(guestDir: string): string {
  const h = createHash('sha256');
  h.update('builder-v3\n');
  const files = [
    'kernel.json',
    ...readdirSync(join(guestDir, 'packs'))
      .filter((f) => f.endsWith('.json'))
      .map((f) => `packs/${f}`),
    ...readdirSync(join(guestDir, 'agent'))
      .filter((f) => /\.(c|h)$/.test(f))
      .map((f) => `agent/${f}`),
    ...readdirSync(join(guestDir, 'jail'))
      .filter((f) => /\.(c|h)$/.test(f))
      .map((f) => `jail/${f}`),
  ].sort();
  for (const f of files)
    h.update(`${f}\n`)
      .update(readFileSync(join(guestDir, f)))
      .update('\n');
  return h.digest('hex');
}

/** Hold an exclusive build lock (a directory: mkdir is atomic); waits for another live builder. */
async function withLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  mkdirSync(dir, { recursive: true });
  const lock = join(dir, '.build-lock');
  const started = Date.now();
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch {
      let holder = 0;
      try {
        holder = Number.parseInt(readFileSync(join(lock, 'pid'), 'utf8'), 10);
      } catch {
        // being created right now
      }
      let alive = false;
      if (holder > 0) {
        try {
          process.kill(holder, 0);
          alive = true;
        } catch {
          alive = false;
        }
      }
      if (holder > 0 && !alive) rmSync(lock, { recursive: true, force: true });
      else if (Date.now() - started > 30 * 60_000)
        throw new SandboxError('image_build_failed', `build lock ${lock} held for 30 minutes`);
      else await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

async function fileEntry(cacheDir: string, rel: string): Promise<ImageFile> {
  const p = join(cacheDir, rel);
  return { path: rel, sha256: await sha256File(p), bytes: statSync(p).size };
}

/** Compile airlock-init with musl, static: it must run with no libc in the initramfs. */
export function compileAgent(guestDir: string, out: string): void {
  const src = join(guestDir, 'agent');
  runTool('musl-gcc', [
    '-static',
    '-Os',
    '-s',
    '-Wall',
    '-Wextra',
    '-Wno-format-truncation',
    '-o',
    out,
    join(src, 'airlock-init.c'),
    join(src, 'proto.c'),
  ]);
}

/** Compile the host-side jail launcher the same way: static, so it needs nothing inside the jail it builds. */
export function compileJail(guestDir: string, out: string): void {
  runTool('musl-gcc', [
    '-static',
    '-Os',
    '-s',
    '-Wall',
    '-Wextra',
    '-o',
    out,
    join(guestDir, 'jail', 'airlock-jail.c'),
  ]);
}

function buildKernel(
  cacheDir: string,
  guestDir: string,
  work: string,
): { package: string; version: string; modules: { name: string; data: Buffer }[] } {
  const recipe = loadKernelRecipe(guestDir);
  const pkg = resolveMetapackage(recipe.metapackage, recipe.packagePrefix);
  const deb = downloadDeb(pkg, join(cacheDir, 'debs'));
  const root = join(work, 'kernel-root');
  extractDeb(deb, root);
  const bootDir = join(root, 'boot');
  const vmlinuz = readdirSync(bootDir).find((f) => f.startsWith('vmlinuz-'));
  if (!vmlinuz) throw new SandboxError('image_build_failed', `${pkg} has no /boot/vmlinuz-*`);
  const bz = readFileSync(join(bootDir, vmlinuz));
  const payload = bzImagePayload(bz);
  if (payload.format !== 'lz4')
    throw new SandboxError('image_build_failed', `kernel payload is ${payload.format}; only lz4 is supported`);
  const lz = join(work, 'payload.lz4');
  writeFileSync(lz, bz.subarray(payload.offset, payload.offset + payload.length));
  // The kernel appends its uncompressed size after the LZ4 stream; lz4 warns about it but decodes.
  const r = spawnSync('lz4', ['-dc', lz], { maxBuffer: 512 << 20 });
  if (!r.stdout || r.stdout.length < 4 || r.stdout.toString('latin1', 1, 4) !== 'ELF') {
    throw new SandboxError(
      'image_build_failed',
      `lz4 could not unpack the kernel payload: ${r.stderr?.toString().slice(-300)}`,
    );
  }
  writeFileSync(join(work, 'vmlinux'), r.stdout);
  const modRoot = join(root, 'lib', 'modules', readdirSync(join(root, 'lib', 'modules'))[0] ?? '');
  const modules = recipe.modules.map((m) => {
    const p = join(modRoot, m);
    if (!existsSync(p)) throw new SandboxError('image_build_failed', `kernel module ${m} not found in ${pkg}`);
    return { name: basename(m, '.ko'), data: readFileSync(p) };
  });
  return { package: pkg, version: debVersion(deb), modules };
}

function buildInitramfs(agent: Buffer, modules: { name: string; data: Buffer }[]): Buffer {
  const entries: CpioEntry[] = [
    { kind: 'dir', path: 'dev' },
    { kind: 'dir', path: 'proc' },
    { kind: 'dir', path: 'sys' },
    { kind: 'dir', path: 'lib' },
    { kind: 'dir', path: 'lib/modules' },
    { kind: 'dir', path: 'lib/modules/airlock' },
    { kind: 'file', path: 'init', data: agent, mode: 0o755 },
    {
      kind: 'file',
      path: 'lib/modules/airlock/order',
      data: Buffer.from(`${modules.map((m) => m.name).join('\n')}\n`),
    },
    ...modules.map((m): CpioEntry => ({ kind: 'file', path: `lib/modules/airlock/${m.name}.ko`, data: m.data })),
  ];
  return buildCpio(entries);
}

function ensureLink(root: string, path: string, target: string): void {
  const full = join(root, path);
  mkdirSync(dirname(full), { recursive: true });
  try {
    lstatSync(full);
    return; // a real file from a package wins
  } catch {
    symlinkSync(target, full);
  }
}

function buildPackRoot(cacheDir: string, recipe: PackRecipe, agentPath: string, root: string): void {
  for (const d of recipe.debs) extractDeb(downloadDeb(d, join(cacheDir, 'debs')), root);
  for (const p of PRUNE) rmSync(join(root, p), { recursive: true, force: true });
  const busybox = join(root, 'bin', 'busybox');
  if (existsSync(busybox)) {
    const applets = runTool(busybox, ['--list'])
      .split('\n')
      .filter((a) => a && !NETWORK_APPLETS.has(a));
    for (const a of applets) ensureLink(root, `bin/${a}`, 'busybox');
  }
  for (const [path, target] of Object.entries(recipe.links)) ensureLink(root, path.slice(1), target);
  for (const d of ['dev', 'proc', 'sys', 'tmp', 'root', 'etc', 'sbin', 'run', 'var/tmp'])
    mkdirSync(join(root, d), { recursive: true });
  chmodSync(join(root, 'tmp'), 0o1777);
  copyFileSync(agentPath, join(root, 'sbin', 'airlock-init'));
  chmodSync(join(root, 'sbin', 'airlock-init'), 0o755);
  writeFileSync(
    join(root, 'etc', 'passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  );
  writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  writeFileSync(join(root, 'etc', 'hostname'), 'sandbox\n');
  writeFileSync(join(root, 'etc', 'hosts'), '127.0.0.1 localhost sandbox\n');
  writeFileSync(join(root, 'etc', 'airlock-pack'), `${recipe.name}\n`);
  if (recipe.precompilePython) precompilePython(root, recipe.precompilePython);
  if (existsSync(join(root, 'lib', 'x86_64-linux-gnu')) && existsSync('/sbin/ldconfig')) {
    // A loader cache for the image's own libraries, so lookups need no directory scans.
    writeFileSync(join(root, 'etc', 'ld.so.conf'), '/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n');
    runTool('/sbin/ldconfig', ['-r', root]);
  }
}

/**
 * Byte-compile the image's standard library with the image's own interpreter
 * (run through the image's dynamic loader, so host libraries play no part).
 * Debian compiles .pyc files in postinst scripts, which `dpkg-deb -x` skips;
 * without them every first import in a fresh sandbox compiles from source,
 * which under TCG costs most of a second.
 */
function precompilePython(root: string, version: string): void {
  const loader = join(root, 'lib64', 'ld-linux-x86-64.so.2');
  const libs = [join(root, 'lib', 'x86_64-linux-gnu'), join(root, 'usr', 'lib', 'x86_64-linux-gnu')].join(':');
  const python = join(root, 'usr', 'bin', `python${version}`);
  // -s/-p rewrite the recorded source paths from the build dir to the guest's.
  runTool(loader, [
    '--library-path',
    libs,
    python,
    '-I',
    '-m',
    'compileall',
    '-q',
    '-j0',
    '-s',
    root,
    '-p',
    '/',
    join(root, 'usr', 'lib', `python${version}`),
  ]);
}

function squash(root: string, out: string): void {
  // lz4: the fastest decompressor the guest kernel has, which matters most under TCG.
  runTool('mksquashfs', [root, out, '-comp', 'lz4', '-noappend', '-all-root', '-no-xattrs', '-quiet', '-no-progress']);
}

/**
 * Build (or reuse) the guest images: the kernel from `linux-image-cloud-amd64`,
 * an initramfs holding airlock-init and the virtio modules, and one squashfs
 * per language pack, each from Debian packages fetched with `apt-get download`.
 * Cached in the image cache dir with checksums in `manifest.json`; a build is
 * reused while the recipes and agent sources are unchanged.
 */
export async function buildImages(opts: BuildOptions = {}): Promise<ImageManifest> {
  const cacheDir = opts.cacheDir ?? imageCacheDir();
  const guestDir = opts.guestDir ?? guestSourceDir();
  const progress = opts.progress ?? (() => {});
  const hash = recipeHash(guestDir);
  const current = readManifest(cacheDir);
  if (!opts.force && current?.recipeHash === hash) return current;
  const missing = builderToolsMissing();
  if (missing.length > 0)
    throw new SandboxError('image_build_failed', `missing host tools: apt-get install ${missing.join(' ')}`);

  return withLock(cacheDir, async () => {
    const again = readManifest(cacheDir); // another process may have built while we waited
    if (!opts.force && again?.recipeHash === hash) return again;
    const recipes = loadPackRecipes(guestDir);
    const total = 3 + recipes.length;
    let step = 0;
    const work = join(cacheDir, `.work-${process.pid}`);
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const outDir = join(cacheDir, hash.slice(0, 12));
    rmSync(outDir, { recursive: true, force: true });
    mkdirSync(join(outDir, 'packs'), { recursive: true });
    const rel = (p: string) => `${hash.slice(0, 12)}/${p}`;
    try {
      progress(++step, total, 'compiling airlock-init and airlock-jail (musl-gcc -static -Os)');
      compileAgent(guestDir, join(outDir, 'airlock-init'));
      compileJail(guestDir, join(outDir, 'airlock-jail'));
      progress(++step, total, 'fetching and unpacking the guest kernel (apt-get download linux-image-cloud-amd64)');
      const k = buildKernel(cacheDir, guestDir, work);
      renameSync(join(work, 'vmlinux'), join(outDir, 'vmlinux'));
      progress(++step, total, `writing the initramfs (airlock-init + ${k.modules.length} kernel modules)`);
      writeFileSync(
        join(outDir, 'initramfs.cpio'),
        buildInitramfs(readFileSync(join(outDir, 'airlock-init')), k.modules),
      );
      const packs: Record<string, ImageManifest['packs'][string]> = {};
      for (const r of recipes) {
        progress(++step, total, `building language pack "${r.name}" (${r.debs.length} Debian packages → squashfs)`);
        const root = join(work, `pack-${r.name}`);
        buildPackRoot(cacheDir, r, join(outDir, 'airlock-init'), root);
        squash(root, join(outDir, 'packs', `${r.name}.squashfs`));
        rmSync(root, { recursive: true, force: true });
        packs[r.name] = {
          ...(await fileEntry(cacheDir, rel(`packs/${r.name}.squashfs`))),
          run: r.run,
          debs: r.debs,
          description: r.description,
          smoke: r.smoke,
        };
      }
      const manifest: ImageManifest = {
        format: 1,
        recipeHash: hash,
        builtAt: new Date().toISOString(),
        kernel: { ...(await fileEntry(cacheDir, rel('vmlinux'))), package: k.package, version: k.version },
        initramfs: await fileEntry(cacheDir, rel('initramfs.cpio')),
        agent: await fileEntry(cacheDir, rel('airlock-init')),
        jail: await fileEntry(cacheDir, rel('airlock-jail')),
        packs,
      };
      // The manifest is written last and renamed into place: its presence means a complete build.
      const tmp = join(cacheDir, `${MANIFEST_FILE}.tmp-${process.pid}`);
      const fd = openSync(tmp, 'w');
      writeSync(fd, `${JSON.stringify(manifest, null, 2)}\n`);
      closeSync(fd);
      renameSync(tmp, join(cacheDir, MANIFEST_FILE));
      // Older builds are garbage now (sandboxes running from them keep their open files).
      for (const d of readdirSync(cacheDir)) {
        if (/^[0-9a-f]{12}$/.test(d) && d !== hash.slice(0, 12))
          rmSync(join(cacheDir, d), { recursive: true, force: true });
      }
      return manifest;
    } catch (e) {
      rmSync(outDir, { recursive: true, force: true });
      throw e;
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}
