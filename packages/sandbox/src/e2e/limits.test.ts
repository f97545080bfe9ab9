/**
 * Every per-sandbox limit enforced, each with its documented outcome, and
 * none of them affecting another sandbox or the daemon (a bystander answers
 * after each). Two VMs for the whole file: one limited sandbox, one bystander.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { processAlive } from '../backends/process-util.js';
import type { SandboxClient } from '../client.js';
import { SandboxError } from '../errors.js';
import { startDaemon, type TestDaemon, waitUntil } from '../testing/harness.js';

async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(
    p,
    (e: unknown) => e instanceof SandboxError && e.code === code && (!message || message.test(e.message)),
  );
}

describe('sandbox limits (qemu)', { timeout: 600_000 }, () => {
  let d: TestDaemon;
  let c: SandboxClient;
  let sb: string;
  let bystander: string;

  before(async () => {
    d = await startDaemon({ limits: { defaults: {}, max: { memory_mb: 512, max_procs: 1024 } } });
    c = d.client;
    sb = (
      await c.create({
        language_pack: 'python',
        memory_mb: 160,
        vcpus: 2,
        rw_mb: 8,
        max_procs: 40,
        exec_timeout_ms: 4000,
        max_output_bytes: 2000,
      })
    ).id;
    bystander = (await c.create({ language_pack: 'shell' })).id;
  });

  after(async () => {
    await d?.close();
  });

  async function bystanderAnswers(): Promise<void> {
    assert.equal((await c.exec(bystander, { code: 'echo ok' })).stdout, 'ok\n');
  }

  it('refuses a create above the daemon maximum, naming the field', async () => {
    await rejectsWith(c.create({ language_pack: 'shell', memory_mb: 1024 }), 'invalid_request', /^memory_mb: .*512/);
    await rejectsWith(c.create({ language_pack: 'shell', max_procs: 2048 }), 'invalid_request', /^max_procs: /);
    await rejectsWith(c.create({ language_pack: 'shell', max_procs: 2 }), 'invalid_request', /^max_procs: /);
  });

  it('reports the limits it runs with', async () => {
    const limits = (await c.inspect(sb))['limits'] as Record<string, unknown>;
    assert.equal(limits['memory_mb'], 160);
    assert.equal(limits['vcpus'], 2);
    assert.equal(limits['rw_mb'], 8);
    assert.equal(limits['max_procs'], 40);
    assert.equal(limits['exec_timeout_ms'], 4000);
    assert.equal(limits['max_exec_timeout_ms'], 4000);
    assert.equal(limits['max_output_bytes'], 2000);
  });

  it('vcpus and memory: the guest sees exactly what was asked for', async () => {
    const r = await c.exec(sb, { argv: ['/bin/sh', '-c', 'nproc; grep MemTotal /proc/meminfo'] });
    const [cpus, mem] = r.stdout.trim().split('\n');
    assert.equal(cpus, '2');
    const kb = Number(/(\d+)/.exec(mem ?? '')?.[1]);
    assert.ok(kb > 100_000 && kb <= 160 * 1024, `MemTotal ${kb} kB`);
  });

  it('memory: a memory bomb is killed by the guest OOM killer; the sandbox keeps working', async () => {
    const r = await c.exec(sb, { code: 'x = []\nwhile True: x.append(bytearray(8 << 20))' });
    assert.ok(r.exit_code === 137 || /MemoryError/.test(r.stderr), `exit ${r.exit_code} ${r.stderr.slice(-200)}`);
    assert.equal((await c.exec(sb, { code: 'print(1)' })).stdout, '1\n');
    await bystanderAnswers();
  });

  it('exec timeout: the default comes from the create, a longer one is refused', async () => {
    const r = await c.exec(sb, { argv: ['/bin/sleep', '30'] });
    assert.equal(r.timed_out, true);
    assert.equal(r.exit_code, 137);
    await rejectsWith(c.exec(sb, { code: 'print(1)', timeout_ms: 5000 }), 'invalid_request', /^timeout_ms: /);
    const short = await c.exec(sb, { argv: ['/bin/sleep', '30'], timeout_ms: 500 });
    assert.equal(short.timed_out, true);
  });

  it('output: capped at the sandbox limit with truncated set; a larger cap is refused', async () => {
    const r = await c.exec(sb, { argv: ['/bin/sh', '-c', 'yes | head -c 100000'] });
    assert.equal(r.truncated, true);
    assert.equal(r.stdout.length, 2000);
    await rejectsWith(
      c.exec(sb, { code: 'print(1)', max_output_bytes: 4000 }),
      'invalid_request',
      /^max_output_bytes: /,
    );
  });

  it('writable layer: writes past rw_mb fail with ENOSPC', async () => {
    const r = await c.exec(sb, {
      argv: ['/bin/sh', '-c', 'dd if=/dev/zero of=/root/fill bs=1M count=64 2>&1; df -k / | tail -1; rm /root/fill'],
    });
    assert.match(r.stdout, /No space left on device/);
    const sizeKb = Number(r.stdout.trim().split('\n').at(-1)?.trim().split(/\s+/)[1]);
    assert.ok(sizeKb <= 8 * 1024, `root is ${sizeKb} kB`);
    assert.equal((await c.exec(sb, { code: 'print(2)' })).stdout, '2\n');
  });

  it('process count: forks past max_procs fail with EAGAIN; the agent and later execs are unaffected', async () => {
    const r = await c.exec(sb, {
      code: [
        'import os, time',
        'n = 0',
        'try:',
        '    for _ in range(200):',
        '        if os.fork() == 0:',
        '            time.sleep(30); os._exit(0)',
        '        n += 1',
        'except OSError as e:',
        '    print("refused", n, e.errno)',
      ].join('\n'),
      timeout_ms: 3000,
    });
    const m = /refused (\d+) 11/.exec(r.stdout);
    assert.ok(m, `stdout ${r.stdout} stderr ${r.stderr.slice(-300)}`);
    assert.ok(Number(m[1]) < 40, `forked ${m[1]}`);
    const limit = await c.exec(sb, { argv: ['/bin/cat', '/sys/fs/cgroup/exec/pids.max'] });
    assert.equal(limit.stdout, '40\n');
    await bystanderAnswers();
  });

  it('leftover processes: whatever an exec leaves behind (even setsid daemons) is killed when it ends', async () => {
    const r = await c.exec(sb, { argv: ['/bin/sh', '-c', 'sleep 300 & setsid sleep 301 & echo started'] });
    assert.equal(r.stdout, 'started\n');
    await waitUntil(
      async () => !(await c.exec(sb, { argv: ['/bin/ps'] })).stdout.includes('sleep 30'),
      10_000,
      'the leftovers to be killed',
    );
  });

  it('lifetime: the sandbox is destroyed when it ends and later calls say sandbox_expired', async () => {
    const short = (await c.create({ language_pack: 'shell', lifetime_s: 3 })).id;
    const pid = Number((await c.inspect(short))['vm_pid']);
    await waitUntil(
      async () => {
        try {
          await c.inspect(short);
          return false;
        } catch (e) {
          return e instanceof SandboxError && e.code === 'sandbox_expired';
        }
      },
      20_000,
      'the lifetime to end',
    );
    await rejectsWith(c.exec(short, { code: 'echo' }), 'sandbox_expired');
    await waitUntil(() => !processAlive(pid), 5000, 'the VM to exit');
    await bystanderAnswers();
  });
});
