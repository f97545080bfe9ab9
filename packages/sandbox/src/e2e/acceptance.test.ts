/**
 * Issue 9 acceptance on the qemu backend (TCG here): create → exec → 42 →
 * delete for every pack, persistence between execs, isolation between
 * sandboxes, nothing surviving delete, and the API surface. One daemon and
 * one long-lived python sandbox are shared by the file to keep boots few.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { processAlive } from '../backends/process-util.js';
import type { SandboxClient } from '../client.js';
import { SandboxError } from '../errors.js';
import type { ExecEvent } from '../sandbox.js';
import { startDaemon, type TestDaemon } from '../testing/harness.js';

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof SandboxError && e.code === code);
}

describe('sandbox acceptance (qemu)', { timeout: 600_000 }, () => {
  let d: TestDaemon;
  let c: SandboxClient;
  let py: string;

  before(async () => {
    d = await startDaemon();
    c = d.client;
    // The emberd README's first call, unchanged: no language_pack means python.
    py = (await c.create()).id;
  });

  after(async () => {
    await d?.close();
  });

  it('reports backend, isolation and KVM in /info', async () => {
    const info = await c.info();
    assert.equal(info['backend'], 'qemu');
    assert.equal(info['isolation'], 'microvm');
    assert.equal(info['kvm'], false);
    assert.deepEqual((info['packs'] as { name: string }[]).map((p) => p.name).sort(), ['node', 'python', 'shell']);
  });

  it('python: print(6*7) → "42\\n", the emberd response shape', async () => {
    const r = await c.exec(py, { code: 'print(6*7)' });
    assert.equal(r.stdout, '42\n');
    assert.equal(r.stderr, '');
    assert.equal(r.exit_code, 0);
    assert.equal(typeof r.duration_ms, 'number');
    assert.equal(r.timed_out, false);
    assert.equal(r.truncated, false);
  });

  for (const [pack, code] of [
    ['shell', 'echo $((6*7))'],
    ['node', 'console.log(6*7)'],
  ] as const) {
    it(`${pack}: create → exec → 42 → delete, and the VM is gone`, async () => {
      const sb = await c.create({ language_pack: pack });
      const r = await c.exec(sb.id, { code });
      assert.equal(r.stdout, '42\n', r.stderr);
      // Leave something behind: no later sandbox may see it.
      await c.exec(sb.id, { argv: ['/bin/sh', '-c', 'echo leftover > /root/leftover.txt'] });
      const pid = Number(sb['vm_pid']);
      await c.delete(sb.id);
      assert.equal(processAlive(pid), false, 'the VM process must be gone after delete');
      await rejectsWith(c.inspect(sb.id), 'not_found');
      await rejectsWith(c.exec(sb.id, { code }), 'not_found');
      await c.delete(sb.id); // idempotent
    });
  }

  it('files written by one exec are visible to the next; upload and download round-trip', async () => {
    await c.exec(py, { code: "open('/root/state.txt','w').write('kept')" });
    assert.equal((await c.exec(py, { code: "print(open('/root/state.txt').read())" })).stdout, 'kept\n');
    const blob = Buffer.alloc(300_000, 0x5a);
    assert.deepEqual(await c.putFile(py, '/root/in/blob.bin', blob), { path: '/root/in/blob.bin', size: blob.length });
    assert.equal(
      (await c.exec(py, { code: "import os; print(os.path.getsize('/root/in/blob.bin'))" })).stdout,
      '300000\n',
    );
    assert.deepEqual(await c.getFile(py, '/root/in/blob.bin'), blob);
    await rejectsWith(c.getFile(py, '/root/none'), 'file_not_found');
  });

  it('streams a large file both ways', async () => {
    const { createHash } = await import('node:crypto');
    const big = Buffer.alloc(24 << 20);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
    const t = performance.now();
    await c.putFile(py, '/root/big.bin', big);
    const up = performance.now() - t;
    const sum = await c.exec(py, {
      code: "import hashlib; print(hashlib.sha256(open('/root/big.bin','rb').read()).hexdigest())",
    });
    assert.equal(sum.stdout.trim(), createHash('sha256').update(big).digest('hex'));
    const back = await c.getFile(py, '/root/big.bin');
    assert.ok(back.equals(big));
    await c.exec(py, { argv: ['rm', '/root/big.bin'] });
    process.stderr.write(`24 MiB upload ${up.toFixed(0)} ms\n`);
  });

  it('two sandboxes cannot see each other, and nothing survives a delete', async () => {
    await c.exec(py, { code: "open('/tmp/secret','w').write('only in A')" });
    const b = (await c.create({ language_pack: 'shell' })).id;
    try {
      const r = await c.exec(b, { code: 'cat /tmp/secret; ls /root; echo; ls /sys/class/net' });
      assert.match(r.stderr, /No such file/);
      assert.doesNotMatch(r.stdout, /leftover/, 'a deleted sandbox left files behind');
      assert.equal(r.stdout.trim(), 'lo', 'no network device besides loopback');
      // The root filesystem is the pack image: no host directory is mounted.
      const m = await c.exec(b, { code: 'cat /proc/mounts' });
      assert.doesNotMatch(m.stdout, /9p|virtiofs|nfs|fuse/);
    } finally {
      await c.delete(b);
    }
  });

  it('streams output as NDJSON events ending with exit', async () => {
    const events: ExecEvent[] = [];
    const last = await c.execStream(
      py,
      { code: 'import time\nfor i in range(3):\n    print(i)\n    time.sleep(0.2)' },
      (e) => events.push(e),
    );
    assert.equal(last.type, 'exit');
    assert.equal(events[0]?.type, 'started');
    const out = events.flatMap((e) => (e.type === 'stdout' ? [e.data] : [])).join('');
    assert.equal(out, '0\n1\n2\n');
    assert.ok(events.filter((e) => e.type === 'stdout').length >= 3, 'output arrives in pieces as it is printed');
  });

  it('times out, kills the process tree, and reports timed_out', async () => {
    const r = await c.exec(py, {
      code: 'import subprocess; subprocess.Popen(["sleep","100"]); import time; time.sleep(100)',
      timeout_ms: 1500,
    });
    assert.equal(r.timed_out, true);
    assert.equal(r.exit_code, 137);
    const ps = await c.exec(py, { argv: ['/bin/sh', '-c', 'ps -o comm | grep -c "^sleep" || true'] });
    assert.equal(ps.stdout.trim(), '0', 'the child sleep must have been killed with its parent');
  });

  it('passes stdin, env, cwd and exit codes; caps output with truncated', async () => {
    const r = await c.exec(py, {
      code: 'import sys, os; print(sys.stdin.read().upper(), os.environ["WHO"], os.getcwd()); sys.exit(4)',
      stdin: 'abc',
      env: { WHO: 'me' },
      cwd: '/tmp',
    });
    assert.equal(r.stdout, 'ABC me /tmp\n');
    assert.equal(r.exit_code, 4);
    const big = await c.exec(py, { code: "print('x' * 100000)", max_output_bytes: 1000 });
    assert.equal(big.truncated, true);
    assert.equal(big.stdout.length, 1000);
  });

  it('runs code longer than one argv element through a file', async () => {
    const code = `x = 0\n${'x += 1\n'.repeat(20_000)}print(x)`;
    assert.equal((await c.exec(py, { code })).stdout, '20000\n');
  });

  it('runs background processes that can be re-attached and signalled', async () => {
    const p = await c.background(py, { argv: ['/bin/sh', '-c', 'for i in 1 2 3; do echo $i; sleep 0.3; done'] });
    assert.equal(p['state'], 'running');
    await new Promise((r) => setTimeout(r, 400));
    const events: ExecEvent[] = [];
    const last = await c.attach(py, p.id, (e) => events.push(e));
    assert.equal(last.type, 'exit');
    assert.equal(
      events.flatMap((e) => (e.type === 'stdout' ? [e.data] : [])).join(''),
      '1\n2\n3\n',
      'replayed and live output together',
    );
    const long = await c.background(py, { argv: ['sleep', '100'] });
    await c.signal(py, long.id, 'TERM');
    const end = await c.attach(py, long.id, () => {});
    assert.equal(end.type === 'exit' && end.signal, 15);
  });

  it('refuses bad input with field-named errors and fitting statuses', async () => {
    await rejectsWith(c.create({ language_pack: 'cobol' }), 'unknown_language_pack');
    await assert.rejects(c.create({ memory_mb: 'lots' }), /memory_mb: /);
    await assert.rejects(c.exec(py, { code: 'print(1)', timeout_ms: 0 }), /timeout_ms: /);
    await rejectsWith(c.exec('sb_doesnotexist', { code: '1' }), 'not_found');
    await assert.rejects(c.putFile(py, 'relative', 'x'), /path: must be an absolute path/);
    const res = await fetch(`http://${d.address}/sandboxes/${py}/exec`, { method: 'POST', body: '{not json' });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'invalid_request');
    const gone = await fetch(`http://${d.address}/sandboxes/sb_doesnotexist`, { method: 'DELETE' });
    assert.equal(gone.status, 204);
  });

  it('lists and inspects with state, limits, uptime and the boot log tail', async () => {
    const { sandboxes } = await c.list();
    assert.ok(sandboxes.some((s) => s.id === py && s['state'] === 'running'));
    const s = await c.inspect(py);
    assert.equal((s['limits'] as { memory_mb: number }).memory_mb, 192);
    assert.equal(typeof s['uptime_s'], 'number');
    assert.match(String(s['boot_log_tail']), /airlock-init .* ready/);
  });
});
