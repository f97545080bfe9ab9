// Per-action overhead of the runner engine (validate → clamp → resolve → spawn → stream →
// redact → fsync'd audit append → result) against a bare child_process.spawn of the same
// binary with the same argv, interleaved in the same run. `ssh localhost true` is the human
// baseline (what people use today), measured when sshd can be started on a loopback port.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ActionEngine,
  defaultRunnerConfig,
  loadCatalog,
  runProcess,
  SecurityLog,
  spawnBackend,
} from '../packages/runner/dist/index.js';

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

function bare(file, args) {
  return new Promise((resolve, reject) => {
    const c = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], shell: false });
    c.stdout.on('data', () => {});
    c.stderr.on('data', () => {});
    c.on('error', reject);
    c.on('close', resolve);
  });
}

/** The same binary through the runner's spawn helper, without the engine around it. */
function viaHelper(file, args) {
  return runProcess(
    { file, args, env: { PATH: '/usr/bin:/bin' }, cwd: '/', limits: { timeout_s: 10, output_bytes: 1 << 20 } },
    () => {},
    { backend: 'helper' },
  );
}

/** Run fn with the spawn backend forced to the setpriv/prlimit fallback. */
async function withExecPath(fn) {
  const before = process.env.AIRLOCK_SPAWNER;
  process.env.AIRLOCK_SPAWNER = 'exec';
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.AIRLOCK_SPAWNER;
    else process.env.AIRLOCK_SPAWNER = before;
  }
}

async function sshBaseline(n, dir) {
  if (!existsSync('/usr/sbin/sshd') || !existsSync('/usr/bin/ssh'))
    return { skipped: 'openssh-server/client not installed' };
  const key = join(dir, 'id');
  const host = join(dir, 'host');
  spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
  spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', host]);
  const { readFileSync } = await import('node:fs');
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${key}.pub`));
  const port = String(20000 + Math.floor(Math.random() * 20000));
  spawnSync('mkdir', ['-p', '/run/sshd']);
  const sshd = spawn(
    '/usr/sbin/sshd',
    [
      '-D',
      '-e',
      '-p',
      port,
      '-o',
      'ListenAddress=127.0.0.1',
      '-o',
      `HostKey=${host}`,
      '-o',
      `AuthorizedKeysFile=${join(dir, 'authorized_keys')}`,
      '-o',
      'PermitRootLogin=yes',
      '-o',
      'StrictModes=no',
      '-o',
      'UsePAM=no',
      '-o',
      `PidFile=${join(dir, 'sshd.pid')}`,
    ],
    { stdio: 'ignore' },
  );
  const sshArgs = [
    '-q',
    '-i',
    key,
    '-p',
    port,
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'BatchMode=yes',
    '-o',
    'ConnectTimeout=5',
    'root@127.0.0.1',
    'true',
  ];
  try {
    let up = false;
    for (let i = 0; i < 50 && !up; i++) {
      await new Promise((r) => setTimeout(r, 100));
      up = spawnSync('ssh', sshArgs, { stdio: 'ignore', timeout: 10000 }).status === 0;
    }
    if (!up) return { skipped: 'sshd did not accept a connection on loopback' };
    const times = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      spawnSync('ssh', sshArgs, { stdio: 'ignore', timeout: 10000 });
      times.push(performance.now() - t);
    }
    return { times };
  } finally {
    sshd.kill('SIGTERM');
  }
}

export async function bench({ quick }) {
  const n = quick ? 40 : 200;
  const dir = mkdtempSync(join(tmpdir(), 'airlock-bench-engine-'));
  try {
    const config = { ...defaultRunnerConfig({}), logPath: join(dir, 'events.jsonl') };
    const catalog = loadCatalog(config.packDirs);
    const engine = new ActionEngine(catalog, config, new SecurityLog(config.logPath), {});
    const action = 'showcase.echo';
    const found = catalog.findAction(action);
    if (found === undefined) throw new Error(`${action} is not in the bundled catalog`);
    const req = {
      action,
      args: { message: 'hello from the bench' },
      reason: 'bench',
      principal: { type: 'local', id: 'bench' },
    };
    const backend = spawnBackend();
    const helper = backend === 'helper';
    // Warm up every path (redactor compile, page cache, helper start).
    for (let i = 0; i < 5; i++) {
      await engine.run(req);
      await bare('/usr/bin/echo', ['hello from the bench']);
      if (helper) await viaHelper('/usr/bin/echo', ['hello from the bench']);
      await withExecPath(() => engine.run(req));
    }
    const eng = [];
    const raw = [];
    const hlp = [];
    const old = [];
    // CPU of this process (the runner's side; the child's own CPU is not in it), per path.
    const cpu = { eng: 0, raw: 0, hlp: 0, old: 0 };
    const timed = async (key, list, fn) => {
      const c = process.cpuUsage();
      const t = performance.now();
      const r = await fn();
      list.push(performance.now() - t);
      const d = process.cpuUsage(c);
      cpu[key] += (d.user + d.system) / 1000;
      return r;
    };
    for (let i = 0; i < n; i++) {
      const r = await timed('eng', eng, () => engine.run(req));
      if (r.status !== 'success') throw new Error(`engine run failed: ${JSON.stringify(r.error)}`);
      await timed('raw', raw, () => bare('/usr/bin/echo', ['hello from the bench']));
      if (helper) await timed('hlp', hlp, () => viaHelper('/usr/bin/echo', ['hello from the bench']));
      await timed('old', old, () => withExecPath(() => engine.run(req)));
    }
    const overhead = eng.map((e, i) => e - raw[i]);
    const ssh = await sshBaseline(quick ? 5 : 20, dir);
    const rows = [
      { name: `engine run ${action} p50 (${backend} spawn path)`, value: pct(eng, 50), unit: 'ms' },
      { name: `engine run ${action} p95`, value: pct(eng, 95), unit: 'ms' },
      { name: 'bare child_process.spawn /usr/bin/echo p50 (baseline)', value: pct(raw, 50), unit: 'ms' },
      { name: 'bare child_process.spawn /usr/bin/echo p95 (baseline)', value: pct(raw, 95), unit: 'ms' },
      { name: 'engine overhead per action p50 (paired, vs bare spawn)', value: pct(overhead, 50), unit: 'ms' },
    ];
    if (helper) {
      const own = eng.map((e, i) => e - hlp[i]);
      rows.push(
        { name: 'bare spawn through the spawn helper p50', value: pct(hlp, 50), unit: 'ms' },
        { name: "engine's own cost p50 (paired, vs helper spawn)", value: pct(own, 50), unit: 'ms' },
      );
    }
    rows.push({ name: 'engine run, setpriv/prlimit fallback path p50', value: pct(old, 50), unit: 'ms' });
    rows.push(
      { name: 'runner CPU per action: engine (helper path)', value: cpu.eng / n, unit: 'ms' },
      { name: 'runner CPU per action: bare child_process.spawn', value: cpu.raw / n, unit: 'ms' },
    );
    if (helper) rows.push({ name: 'runner CPU per action: bare helper spawn', value: cpu.hlp / n, unit: 'ms' });
    rows.push({ name: 'runner CPU per action: engine (fallback path)', value: cpu.old / n, unit: 'ms' });
    const notes = [
      `${n} interleaved rounds (engine, bare spawn${helper ? ', helper spawn' : ''}, engine on the fallback path).`,
      `Spawn path: ${backend}. The engine spawns through the runner's spawn helper (a small static C process that forks and execs; see docs/architecture.md) and appends the fsync'd event with group commit; the fallback path (no C compiler) spawns setpriv --pdeathsig (+ prlimit) through child_process.`,
      "Engine overhead vs bare spawn can be negative: child_process.spawn forks the whole Node process, the helper forks a 40 KB one. The engine's own cost (validation, redaction, event, fsync) is the paired difference against a spawn through the helper.",
      'Runner CPU per action: CPU time of this process (user + system, all its threads) while the action ran, not counting the action process itself. It is less sensitive than wall time to other work on the machine.',
      `Load average (1 min) at the end: ${loadavg()[0].toFixed(1)} on ${cpus().length} cores.`,
      'Target: engine overhead under 5 ms per action at p50.',
    ];
    if (ssh.times) {
      rows.push({ name: 'ssh 127.0.0.1 true p50 (human baseline)', value: pct(ssh.times, 50), unit: 'ms' });
    } else notes.push(`ssh baseline skipped: ${ssh.skipped}`);
    const ratio = [
      { name: 'engine p50 / bare spawn p50', value: pct(eng, 50) / pct(raw, 50) },
      { name: 'fallback-path engine p50 / helper-path engine p50', value: pct(old, 50) / pct(eng, 50) },
    ];
    if (ssh.times) ratio.push({ name: 'ssh p50 / engine p50', value: pct(ssh.times, 50) / pct(eng, 50) });
    return { title: 'Runner engine per-action overhead', rows, ratio, notes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
