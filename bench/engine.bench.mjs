// Per-action overhead of the runner engine (validate → clamp → resolve → spawn → stream →
// redact → fsync'd audit append → result) against a bare child_process.spawn of the same
// binary with the same argv, interleaved in the same run. `ssh localhost true` is the human
// baseline (what people use today), measured when sshd can be started on a loopback port.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ActionEngine, defaultRunnerConfig, loadCatalog, SecurityLog } from '../packages/runner/dist/index.js';

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
    // Warm up both paths (redactor compile, page cache).
    for (let i = 0; i < 5; i++) {
      await engine.run(req);
      await bare('/usr/bin/echo', ['hello from the bench']);
    }
    const eng = [];
    const raw = [];
    for (let i = 0; i < n; i++) {
      let t = performance.now();
      const r = await engine.run(req);
      eng.push(performance.now() - t);
      if (r.status !== 'success') throw new Error(`engine run failed: ${JSON.stringify(r.error)}`);
      t = performance.now();
      await bare('/usr/bin/echo', ['hello from the bench']);
      raw.push(performance.now() - t);
    }
    const overhead = eng.map((e, i) => e - raw[i]);
    const ssh = await sshBaseline(quick ? 5 : 20, dir);
    const rows = [
      { name: `engine run ${action} p50`, value: pct(eng, 50), unit: 'ms' },
      { name: `engine run ${action} p95`, value: pct(eng, 95), unit: 'ms' },
      { name: 'bare spawn /usr/bin/echo p50 (baseline)', value: pct(raw, 50), unit: 'ms' },
      { name: 'bare spawn /usr/bin/echo p95 (baseline)', value: pct(raw, 95), unit: 'ms' },
      { name: 'engine overhead per action p50 (paired)', value: pct(overhead, 50), unit: 'ms' },
    ];
    const notes = [
      `${n} interleaved pairs. Overhead includes setpriv (pdeathsig) exec, validation, redaction and the fsync'd audit append.`,
      'Target: engine overhead under 5 ms per action at p50.',
    ];
    if (ssh.times) {
      rows.push({ name: 'ssh 127.0.0.1 true p50 (human baseline)', value: pct(ssh.times, 50), unit: 'ms' });
    } else notes.push(`ssh baseline skipped: ${ssh.skipped}`);
    const ratio = [{ name: 'engine p50 / bare spawn p50', value: pct(eng, 50) / pct(raw, 50) }];
    if (ssh.times) ratio.push({ name: 'ssh p50 / engine p50', value: pct(ssh.times, 50) / pct(eng, 50) });
    return { title: 'Runner engine per-action overhead', rows, ratio, notes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
