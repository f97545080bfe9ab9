/**
 * The host-side jail around QEMU, read from the kernel's view of the live
 * monitor process: /proc/<pid>/status (uid, capabilities, no_new_privs,
 * seccomp), /proc/<pid>/ns/* against the host's, the monitor's mounts and
 * network devices, and its host cgroup files. Runs as root (full jail); as
 * another user it checks the degraded mode is reported instead.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { processAlive } from '../backends/process-util.js';
import { readManifest } from '../images/manifest.js';
import { cgroupDirs, detectCgroups } from '../jail/cgroup.js';
import { startDaemon, type TestDaemon, testImageDir, waitUntil } from '../testing/harness.js';

const isRoot = process.geteuid?.() === 0;

function status(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

describe('QEMU jail (root)', { skip: !isRoot && 'the full jail needs root', timeout: 300_000 }, () => {
  let d: TestDaemon;
  let a: { id: string; pid: number };
  let b: { id: string; pid: number };

  before(async () => {
    d = await startDaemon();
    const sa = await d.client.create({ language_pack: 'shell', memory_mb: 160, vcpus: 2 });
    const sb = await d.client.create({ language_pack: 'shell' });
    a = { id: sa.id, pid: Number(sa['vm_pid']) };
    b = { id: sb.id, pid: Number(sb['vm_pid']) };
  });

  after(async () => {
    await d?.close();
  });

  it('reports every jail property in effect', async () => {
    const info = await d.client.info();
    const jail = info['jail'] as { level: string; properties: { property: string; in_effect: boolean }[] };
    assert.equal(jail.level, 'root');
    const off = jail.properties.filter((p) => !p.in_effect).map((p) => p.property);
    if (detectCgroups().version === 'none') assert.deepEqual(off, ['host cgroup (cpu, memory, pids)']);
    else assert.deepEqual(off, []);
  });

  it('runs QEMU as a dedicated unprivileged uid/gid per sandbox, no capabilities, no_new_privs, seccomp', () => {
    const s = status(a.pid);
    assert.match(s['Name'] ?? '', /qemu|airlock/);
    const uids = (s['Uid'] ?? '').split(/\s+/).map(Number);
    const gids = (s['Gid'] ?? '').split(/\s+/).map(Number);
    assert.equal(new Set(uids).size, 1, `real, effective, saved and fs uid agree: ${s['Uid']}`);
    assert.ok((uids[0] ?? 0) >= 200_000, `uid ${uids[0]}`);
    assert.equal(new Set(gids).size, 1);
    assert.ok((gids[0] ?? 0) >= 200_000);
    assert.equal(s['Groups'], '');
    for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) assert.equal(s[set], '0000000000000000', set);
    assert.equal(s['NoNewPrivs'], '1');
    assert.equal(s['Seccomp'], '2', 'seccomp filter mode');
    const other = Number((status(b.pid)['Uid'] ?? '').split(/\s+/)[0]);
    assert.notEqual(other, uids[0], 'each sandbox has its own uid');
  });

  it('puts QEMU in its own mount, network, pid, ipc, uts and cgroup namespaces', () => {
    for (const ns of ['mnt', 'net', 'pid', 'ipc', 'uts', 'cgroup']) {
      const mine = readlinkSync(`/proc/self/ns/${ns}`);
      assert.notEqual(readlinkSync(`/proc/${a.pid}/ns/${ns}`), mine, `${ns} namespace`);
      assert.notEqual(readlinkSync(`/proc/${a.pid}/ns/${ns}`), readlinkSync(`/proc/${b.pid}/ns/${ns}`));
    }
    // The `ls -l /proc/<pid>/ns` view, for the record.
    const ls = spawnSync('ls', ['-l', `/proc/${a.pid}/ns`], { encoding: 'utf8' }).stdout;
    assert.match(ls, /net -> net:\[\d+\]/);
  });

  it('gives QEMU no network interface but a loopback', () => {
    const devs = readFileSync(`/proc/${a.pid}/net/dev`, 'utf8')
      .split('\n')
      .slice(2)
      .map((l) => l.split(':')[0]?.trim())
      .filter(Boolean);
    assert.deepEqual(devs, ['lo']);
  });

  it('shows QEMU only its kernel, image, libraries and socket directory', () => {
    const root = `/proc/${a.pid}/root`;
    const top = readdirSync(root).sort();
    const allowed = [
      'dev',
      'etc',
      'lib',
      'lib64',
      'tmp',
      'usr',
      testImageDir().split('/')[1],
      d.stateDir.split('/')[1],
    ];
    for (const name of top) assert.ok(allowed.includes(name), `/${name}`);
    assert.deepEqual(readdirSync(join(root, 'dev')).sort(), ['null', 'random', 'urandom', 'zero']);
    assert.deepEqual(readdirSync(join(root, 'etc')), ['ld.so.cache']);
    assert.equal(existsSync(join(root, 'root')), false);
    assert.equal(existsSync(join(root, 'home')), false);
    assert.equal(existsSync(join(root, 'proc')), false);
    // The other sandbox's sockets are not in this one's view.
    assert.equal(existsSync(join(root, d.stateDir, b.id)), false);
    assert.ok(existsSync(join(root, d.stateDir, a.id, 'run', 'ctl.sock')));
    assert.equal(existsSync(join(root, d.stateDir, a.id, 'record.json')), false);
    const images = readdirSync(join(root, testImageDir()));
    const m = readManifest(testImageDir());
    assert.deepEqual(images, [m?.kernel.path.split('/')[0]]);
    const mounts = readFileSync(`/proc/${a.pid}/mountinfo`, 'utf8');
    for (const line of mounts.trim().split('\n')) {
      const [left = '', right = ''] = line.split(' - ');
      const mountPoint = left.split(' ')[4] ?? '';
      const opts = left.split(' ')[5] ?? '';
      if (mountPoint.endsWith('/run')) assert.match(opts, /^rw/, line);
      else assert.match(opts, /^ro/, `${line} (${right})`);
    }
  });

  it('limits QEMU with a host cgroup: CPU quota = vCPUs, memory, pids', () => {
    const layout = detectCgroups();
    if (layout.version === 'none') return;
    const dirs = cgroupDirs(layout, a.id);
    const read = (file: string) => {
      for (const dir of dirs) if (existsSync(join(dir, file))) return readFileSync(join(dir, file), 'utf8').trim();
      throw new Error(`no ${file} in ${dirs.join(', ')}`);
    };
    if (layout.version === 'v1') {
      assert.equal(read('cpu.cfs_quota_us'), '200000');
      assert.equal(read('cpu.cfs_period_us'), '100000');
      assert.equal(Number(read('memory.limit_in_bytes')), (160 + 192) * 2 ** 20);
    } else {
      assert.equal(read('cpu.max'), '200000 100000');
      assert.equal(Number(read('memory.max')), (160 + 192) * 2 ** 20);
    }
    assert.equal(read('pids.max'), '128');
    assert.ok(read('cgroup.procs').split('\n').map(Number).includes(a.pid));
    const procCgroup = readFileSync(`/proc/${a.pid}/cgroup`, 'utf8');
    // Seen from the host; inside its own cgroup namespace the monitor sees its group as the root.
    assert.match(procCgroup, new RegExp(`/airlock/${a.id}$`, 'm'));
  });

  it('still answers through the bind-mounted sockets, and delete removes the VM, its cgroup and frees the uid', async () => {
    assert.equal((await d.client.exec(a.id, { code: 'echo jailed' })).stdout, 'jailed\n');
    const uid = Number((status(a.pid)['Uid'] ?? '').split(/\s+/)[0]);
    await d.client.delete(a.id);
    assert.equal(processAlive(a.pid), false);
    const layout = detectCgroups();
    await waitUntil(() => cgroupDirs(layout, a.id).every((x) => !existsSync(x)), 10_000, 'the cgroup to be removed');
    const c = await d.client.create({ language_pack: 'shell' });
    assert.equal(Number((status(Number(c['vm_pid']))['Uid'] ?? '').split(/\s+/)[0]), uid, 'the freed uid is reused');
    await d.client.delete(c.id);
  });
});

describe('QEMU jail launcher without root (degraded)', { timeout: 60_000 }, () => {
  const launcher = (() => {
    const m = readManifest(testImageDir());
    return m?.jail ? join(testImageDir(), m.jail.path) : undefined;
  })();
  const nobody = isRoot && spawnSync('setpriv', ['--version']).status === 0;
  let dir = '';

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'aljail-'));
    mkdirSync(join(dir, 'root'));
    spawnSync('chmod', ['-R', '777', dir]);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('as an ordinary user: own namespaces through a user namespace, no capabilities, no_new_privs', {
    skip: (!launcher || !nobody) && 'needs root (to become nobody) and built images',
  }, () => {
    const r = spawnSync(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        '--',
        launcher ?? '',
        '--userns',
        '--root',
        join(dir, 'root'),
        ...['/usr', '/lib', '/lib64'].flatMap((p) => ['--ro', p]),
        '--',
        '/usr/bin/sh',
        '-c',
        'ls /; cat /sys/class/net 2>&1; echo uid=$(id -u)',
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe', 'pipe'] },
    );
    if (/unshare: (Operation not permitted|Invalid argument)/.test(r.stderr)) return; // user namespaces are disabled here; the daemon reports level "none"
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.split('\n').slice(0, 4), ['lib', 'lib64', 'tmp', 'usr']);
    assert.match(r.stdout, /uid=0/, 'root only inside its own user namespace');
  });
});
