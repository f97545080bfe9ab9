// Sandbox benchmarks (issue 9): create latency, exec round trip (`true`, `print(1)`) and
// memory per idle sandbox, as p50/p95 over repeated runs, with a plain host `python3 -c`
// and gVisor's `runsc do` measured in the same run as baselines.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
  const m = await SandboxManager.open({ imageDir, stateDir, defaultMemoryMb: 192 });
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
    rows.push({ name: 'create shell sandbox (ready to exec) p50', value: pct(creates, 50), unit: 'ms' });
    rows.push({ name: 'create shell sandbox p95', value: pct(creates, 95), unit: 'ms' });

    // Warm pool: a create with default limits takes a pre-booted sandbox.
    const warmDir = mkdtempSync(join(tmpdir(), 'alsb-bench-warm-'));
    const wm = await SandboxManager.open({
      imageDir,
      stateDir: warmDir,
      defaultMemoryMb: 192,
      warmPool: 1,
      warmPacks: ['shell'],
    });
    const warm = [];
    try {
      for (let i = 0; i < (quick ? 2 : 5); i++) {
        const until = Date.now() + 120_000;
        while (wm.warmCounts().shell !== 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
        let id;
        warm.push(await time(async () => (id = (await wm.create({ language_pack: 'shell' })).id)));
        await wm.delete(id);
      }
    } finally {
      await wm.close();
      rmSync(warmDir, { recursive: true, force: true });
    }
    rows.push({ name: 'create from the warm pool p50', value: pct(warm, 50), unit: 'ms' });

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
      if (Number.isFinite(pct(rp, 50)))
        ratio.push({ name: 'sandbox print(1) p50 / runsc python3 p50', value: pct(prints, 50) / pct(rp, 50) });
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
