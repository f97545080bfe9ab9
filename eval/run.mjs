#!/usr/bin/env node
// Sandbox safety harness: escape and denial-of-service attempts run as guest code. Each
// attempt states what must hold afterwards; after every attempt a bystander sandbox must
// still answer, so one hostile sandbox cannot take the daemon down.
// Run: node eval/run.mjs            (uses $AIRLOCK_SANDBOX_ADDR or an in-process daemon)
import { connect } from '../examples/_daemon.mjs';

/** @type {{name: string, pack: string, code: string, timeout_ms?: number, max_output_bytes?: number, expect: (r: any, sb: any) => string | true, crashes?: boolean}[]} */
const attempts = [
  {
    name: 'reach the network (TCP to 1.1.1.1:53)',
    pack: 'python',
    code: "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=3); print('CONNECTED')\nexcept OSError as e:\n    print('refused', e.errno)",
    expect: (r) => (r.stdout.includes('refused') ? true : `got ${r.stdout}`),
  },
  {
    name: 'find a network interface besides loopback',
    pack: 'shell',
    code: 'ls /sys/class/net',
    expect: (r) => (r.stdout.trim() === 'lo' ? true : `interfaces: ${r.stdout}`),
  },
  {
    name: 'find a host filesystem (9p, virtiofs, nfs, host paths)',
    pack: 'shell',
    code: 'ls -d /work /home/* /mnt/* 2>/dev/null; echo ---; cut -d" " -f3 /proc/mounts',
    expect: (r) => {
      const [paths = '', types = ''] = r.stdout.split('---');
      return paths.trim() === '' && !/9p|virtiofs|nfs|fuse/.test(types) ? true : `saw: ${r.stdout}`;
    },
  },
  {
    name: 'hijack the control channel (open the virtio port)',
    pack: 'shell',
    code: "printf '\\377\\377\\377\\377' > /dev/$(basename $(dirname $(grep -l airlock.ctl /sys/class/virtio-ports/*/name)))",
    expect: (r) => (/busy/i.test(r.stderr) ? true : `exit ${r.exit_code} ${r.stderr}`),
  },
  {
    name: 'fork bomb (killed at the timeout, sandbox survives)',
    pack: 'shell',
    code: 'b() { b | b; }; b',
    timeout_ms: 3000,
    expect: (r) => (r.timed_out ? true : `exit ${r.exit_code} without a timeout`),
  },
  {
    name: 'exhaust memory (guest OOM killer, not the host)',
    pack: 'python',
    code: 'x = []\nwhile True: x.append(bytearray(16 << 20))',
    timeout_ms: 30000,
    expect: (r) => (r.exit_code === 137 || /MemoryError/.test(r.stderr) ? true : `exit ${r.exit_code}`),
  },
  {
    name: 'fill the disk (bounded by the tmpfs upper layer)',
    pack: 'shell',
    code: 'dd if=/dev/zero of=/root/fill bs=1M count=100000 2>&1 | tail -1; df -m / | tail -1',
    timeout_ms: 60000,
    expect: (r) => (/100% \/$/m.test(r.stdout) ? true : r.stdout),
  },
  {
    name: 'flood output (capped, truncated)',
    pack: 'shell',
    code: 'yes airlock',
    timeout_ms: 3000,
    max_output_bytes: 100000,
    expect: (r) => (r.truncated && r.stdout.length <= 100000 ? true : `len ${r.stdout.length}`),
  },
  {
    name: 'burn CPU forever (killed at the timeout)',
    pack: 'python',
    code: 'while True: pass',
    timeout_ms: 2000,
    expect: (r) => (r.timed_out ? true : 'not timed out'),
  },
  {
    name: 'crash the guest kernel (only this sandbox fails)',
    pack: 'shell',
    code: 'echo c > /proc/sysrq-trigger',
    crashes: true,
    expect: (_r, sb) => (sb.state === 'failed' ? true : `state ${sb.state}`),
  },
];

const { client, close } = await connect();
const bystander = (await client.create({ language_pack: 'shell' })).id;
let failures = 0;
try {
  for (const a of attempts) {
    const sb = await client.create({ language_pack: a.pack, memory_mb: 192 });
    let r = { stdout: '', stderr: '', exit_code: -1 };
    try {
      r = await client.exec(sb.id, {
        code: a.code,
        ...(a.timeout_ms ? { timeout_ms: a.timeout_ms } : {}),
        ...(a.max_output_bytes ? { max_output_bytes: a.max_output_bytes } : {}),
      });
    } catch (e) {
      r = { stdout: '', stderr: String(e.message), exit_code: -1, error: e.code };
    }
    if (a.crashes) await new Promise((res) => setTimeout(res, 3000));
    const state = await client.inspect(sb.id).catch(() => ({ state: 'gone' }));
    const verdict = a.expect(r, state);
    const alive = (await client.exec(bystander, { code: 'echo ok' })).stdout === 'ok\n';
    const ok = verdict === true && alive && (a.crashes || state.state === 'running');
    if (!ok) failures++;
    console.log(
      `${ok ? 'HELD ' : 'FAIL '} ${a.name}${verdict === true ? '' : ` — ${verdict}`}${alive ? '' : ' — bystander stopped answering'}${!a.crashes && state.state !== 'running' ? ` — sandbox ${state.state}` : ''}`,
    );
    await client.delete(sb.id);
  }
} finally {
  await client.delete(bystander);
  await close();
}
console.log(
  failures === 0
    ? `all ${attempts.length} attempts contained`
    : `${failures} of ${attempts.length} attempts NOT contained`,
);
process.exitCode = failures === 0 ? 0 : 1;
