// Sandbox benchmarks (issues 9 and 10): create latency (boot, snapshot restore, warm pool),
// exec round trip (`true`, `print(1)`), create + first print(1) from the pool against
// `runsc do python3`, and how many idle 128 MiB sandboxes fit with their PSS, as p50/p95
// over repeated runs, with a plain host `python3 -c` and gVisor's `runsc do` measured in
// the same run as baselines.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(fileURLToPath(import.meta.url), '../..');
const sandboxLib = pathToFileURL(join(root, 'packages/sandbox/dist/index.js')).href;

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function time(fn) {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

function rssMb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

function pssMb(pid) {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

function loadavg() {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

/** Sizes of the saved states and RAM images (allocated, not apparent: the RAM image is sparse). */
function snapshotSizes(dir) {
  const out = { state: 0, ram: 0 };
  try {
    for (const f of readdirSync(join(dir, '.snapshots'))) {
      const st = statSync(join(dir, '.snapshots', f));
      if (f.endsWith('.vmstate')) out.state = Math.max(out.state, st.size);
      if (f.endsWith('.ram')) out.ram = Math.max(out.ram, st.blocks * 512);
    }
  } catch {
    // no snapshots
  }
  return out;
}

/** Run `fn` over `xs`, `n` at a time. */
async function pool(xs, n, fn) {
  const out = [];
  let i = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (i < xs.length) {
        const k = i++;
        out[k] = await fn(xs[k]);
      }
    }),
  );
  return out;
}

async function waitFor(fn, ms) {
  const until = Date.now() + ms;
  while (!fn() && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
}

function hostRun(cmd, args) {
  const t = performance.now();
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  if (r.status !== 0) return Number.NaN;
  return performance.now() - t;
}

export async function bench({ quick }) {
  const { SandboxManager, buildImages, imageCacheDir } = await import(sandboxLib);
  const imageDir =
    process.env.AIRLOCK_IMAGE_CACHE ??
    (existsSync('/var/cache/airlock-images') ? '/var/cache/airlock-images' : imageCacheDir());
  await buildImages({ cacheDir: imageDir, progress: (s, n, m) => process.stdout.write(`  [images ${s}/${n}] ${m}\n`) });
  const stateDir = mkdtempSync(join(tmpdir(), 'alsb-bench-'));
  // Boot numbers first, without saved states; the snapshot section below turns them on.
  const m = await SandboxManager.open({ imageDir, stateDir, defaultMemoryMb: 192, snapshots: false });
  const info = m.info();
  const nCreate = quick ? 3 : 8;
  const nExec = quick ? 10 : 30;
  const rows = [];
  const notes = [
    `backend ${info.backend} (${info.isolation}), accelerator ${info.accel}${info.kvm ? ' (KVM)' : ' (no KVM: TCG software emulation)'}; guests 192 MiB, 1 vCPU`,
  ];
  try {
    const creates = [];
    for (let i = 0; i < nCreate; i++) {
      let id;
      creates.push(await time(async () => (id = (await m.create({ language_pack: 'shell' })).id)));
      await m.delete(id);
    }
    rows.push({ name: 'create shell sandbox, boot (ready to exec) p50', value: pct(creates, 50), unit: 'ms' });
    rows.push({ name: 'create shell sandbox, boot p95', value: pct(creates, 95), unit: 'ms' });

    // Snapshot restore with an empty pool: the first create boots and saves the state.
    const snapDir = mkdtempSync(join(tmpdir(), 'alsb-bench-snap-'));
    const sm = await SandboxManager.open({ imageDir, stateDir: snapDir, defaultMemoryMb: 192, maxSandboxes: 64 });
    const restores = [];
    let density = [];
    try {
      await sm.delete((await sm.create({ language_pack: 'shell' })).id);
      await waitFor(() => sm.snapshotCount() >= 1, 120_000);
      for (let i = 0; i < nCreate; i++) {
        let sb;
        restores.push(await time(async () => (sb = await sm.create({ language_pack: 'shell' }))));
        if (!sb.restored) notes.push('a restore fell back to a boot');
        await sm.delete(sb.id);
      }
      rows.push({ name: 'create from a saved state, empty pool p50', value: pct(restores, 50), unit: 'ms' });
      rows.push({ name: 'create from a saved state, empty pool p95', value: pct(restores, 95), unit: 'ms' });
      const sizes = snapshotSizes(snapDir);
      rows.push({ name: 'saved state file (device state only)', value: sizes.state / 1024, unit: 'KiB' });
      rows.push({ name: 'saved RAM image, allocated (192 MiB guest)', value: sizes.ram / 2 ** 20, unit: 'MiB' });
      notes.push(`load average before the restores: ${loadavg()} (2 cores)`);

      // Density: idle 128 MiB sandboxes restored from a saved state, alive at once.
      const want = quick ? 8 : 48;
      await sm.delete((await sm.create({ language_pack: 'shell', memory_mb: 128 })).id);
      await waitFor(() => sm.snapshotCount() >= 2, 120_000);
      const alive = [];
      for (let i = 0; i < want; i++) {
        try {
          alive.push(await sm.create({ language_pack: 'shell', memory_mb: 128 }));
        } catch (e) {
          notes.push(`density stopped at ${alive.length}: ${e.code} ${e.message}`);
          break;
        }
      }
      await new Promise((r) => setTimeout(r, 3000));
      const idleLoad = loadavg();
      // Each must run a command; a few at a time, so this checks that every one answers rather
      // than how fast 2 cores emulate dozens of first execs at once.
      const answering = (
        await pool(alive, 4, (sb) =>
          sb.exec({ argv: ['true'] }).then(
            () => 1,
            () => 0,
          ),
        )
      ).reduce((a, b) => a + b, 0);
      density = alive.map((sb) => pssMb(sb.vm.pid));
      const availAfter = Number(/MemAvailable:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) / 1024;
      notes.push(
        `density: load average with ${alive.length} idle sandboxes ${idleLoad}; host MemAvailable then ${availAfter.toFixed(0)} MiB`,
      );
      const ksm = (() => {
        try {
          return readFileSync('/sys/kernel/mm/ksm/run', 'utf8').trim() === '1' ? 'on' : 'off';
        } catch {
          return 'absent';
        }
      })();
      rows.push({ name: 'idle 128 MiB sandboxes alive and answering at once', value: answering, unit: 'sandboxes' });
      rows.push({ name: 'host memory (PSS) per idle 128 MiB sandbox p50', value: pct(density, 50), unit: 'MiB' });
      rows.push({ name: 'host memory (PSS) per idle 128 MiB sandbox p95', value: pct(density, 95), unit: 'MiB' });
      notes.push(
        `density: ${alive.length} restored 128 MiB shell sandboxes (TCG tb-size=32), each mapping the saved RAM image copy-on-write (sealed memfd, pages shared until written); host KSM ${ksm} (not needed for this)`,
      );
      await Promise.all(alive.map((sb) => sm.delete(sb.id)));
    } finally {
      await sm.close();
      rmSync(snapDir, { recursive: true, force: true });
    }

    // Warm pool: a create with default limits takes a pre-booted sandbox.
    const warmDir = mkdtempSync(join(tmpdir(), 'alsb-bench-warm-'));
    const wm = await SandboxManager.open({
      imageDir,
      stateDir: warmDir,
      defaultMemoryMb: 192,
      warmPool: 1,
      warmPacks: ['shell', 'python'],
    });
    const warm = [];
    const pooledPrint = [];
    try {
      for (let i = 0; i < (quick ? 3 : 8); i++) {
        await waitFor(() => wm.warmCounts().shell === 1, 120_000);
        let id;
        warm.push(await time(async () => (id = (await wm.create({ language_pack: 'shell' })).id)));
        await wm.delete(id);
      }
      // Create + first print(1) in a pooled python sandbox, against runsc below.
      for (let i = 0; i < (quick ? 2 : 5); i++) {
        await waitFor(() => wm.warmCounts().python === 1, 120_000);
        let id;
        pooledPrint.push(
          await time(async () => {
            const sb = await wm.create({ language_pack: 'python' });
            id = sb.id;
            await sb.exec({ code: 'print(1)' });
          }),
        );
        await wm.delete(id);
      }
    } finally {
      await wm.close();
      rmSync(warmDir, { recursive: true, force: true });
    }
    rows.push({ name: 'create from the warm pool p50', value: pct(warm, 50), unit: 'ms' });
    rows.push({ name: 'create + first python print(1), pooled p50', value: pct(pooledPrint, 50), unit: 'ms' });

    const sh = m.get((await m.create({ language_pack: 'shell' })).id);
    const py = m.get((await m.create({ language_pack: 'python' })).id);
    const t0 = await time(() => py.exec({ code: 'print(1)' }));
    const trues = [];
    const prints = [];
    for (let i = 0; i < nExec; i++) {
      trues.push(await time(() => sh.exec({ argv: ['true'] })));
      prints.push(await time(() => py.exec({ code: 'print(1)' })));
    }
    rows.push({ name: 'exec `true` round trip p50', value: pct(trues, 50), unit: 'ms' });
    rows.push({ name: 'exec `true` round trip p95', value: pct(trues, 95), unit: 'ms' });
    rows.push({ name: 'exec python `print(1)` first in a fresh sandbox', value: t0, unit: 'ms' });
    rows.push({ name: 'exec python `print(1)` p50', value: pct(prints, 50), unit: 'ms' });
    rows.push({ name: 'exec python `print(1)` p95', value: pct(prints, 95), unit: 'ms' });
    const pings = [];
    for (let i = 0; i < nExec; i++) pings.push(await sh.channel.ping(5000));
    rows.push({ name: 'guest channel ping round trip p50', value: pct(pings, 50), unit: 'ms' });

    // Idle memory: the VM monitor's resident set a few seconds after boot.
    const idle = [m.get((await m.create({ language_pack: 'shell' })).id), sh, py];
    await new Promise((r) => setTimeout(r, 3000));
    const rss = idle.map((s) => rssMb(s.vm.pid));
    rows.push({ name: 'memory per idle sandbox (QEMU RSS) p50', value: pct(rss, 50), unit: 'MiB' });
    rows.push({ name: 'memory per idle sandbox (QEMU RSS) p95', value: pct(rss, 95), unit: 'MiB' });

    const host = [];
    for (let i = 0; i < nExec; i++) host.push(hostRun('python3', ['-c', 'print(1)']));
    rows.push({ name: 'baseline: host `python3 -c print(1)` p50', value: pct(host, 50), unit: 'ms' });
    const ratio = [{ name: 'sandbox print(1) p50 / host python3 p50', value: pct(prints, 50) / pct(host, 50) }];
    if (existsSync('/usr/bin/runsc')) {
      const runscArgs = ['--rootless', '--network=none', '--platform=ptrace', 'do'];
      const rt = [];
      const rp = [];
      for (let i = 0; i < (quick ? 2 : 5); i++) {
        rt.push(hostRun('runsc', [...runscArgs, 'true']));
        rp.push(hostRun('runsc', [...runscArgs, 'python3', '-c', 'print(1)']));
      }
      rows.push({ name: 'baseline: `runsc do true` (new gVisor sandbox each) p50', value: pct(rt, 50), unit: 'ms' });
      rows.push({ name: 'baseline: `runsc do python3 -c print(1)` p50', value: pct(rp, 50), unit: 'ms' });
      if (Number.isFinite(pct(rp, 50))) {
        ratio.push({ name: 'sandbox print(1) p50 / runsc python3 p50', value: pct(prints, 50) / pct(rp, 50) });
        ratio.push({
          name: 'pooled create + first print(1) p50 / runsc python3 p50 (below 1: faster)',
          value: pct(pooledPrint, 50) / pct(rp, 50),
        });
      }
      notes.push(
        'runsc baselines start a fresh gVisor sandbox per command (ptrace platform, rootless, no network); the microVM numbers reuse one booted sandbox.',
      );
    } else {
      notes.push('runsc not installed: gVisor baseline skipped');
    }
    notes.push(
      `${nCreate} creates, ${nExec} execs of each kind; create includes boot to the guest agent answering on its control channel.`,
    );
    return { title: 'Sandboxes (microVM daemon)', rows, ratio, notes };
  } finally {
    await m.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
}
