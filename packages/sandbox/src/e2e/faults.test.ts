/**
 * Correctness under faults (issue 9): guest crash, guest hang, malformed and
 * half-sent frames in both directions, slow boot, daemon restart, client
 * disconnect mid-exec. After each fault the daemon must keep serving a
 * bystander sandbox.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { processAlive } from '../backends/process-util.js';
import { SandboxClient } from '../client.js';
import type { SandboxError } from '../errors.js';
import { encode } from '../guest/protocol.js';
import { SandboxManager } from '../manager.js';
import { startDaemon, type TestDaemon, testImageDir, vmPidsWith, waitUntil } from '../testing/harness.js';

describe('sandbox faults (qemu)', { timeout: 600_000 }, () => {
  let d: TestDaemon;
  let c: SandboxClient;
  let bystander: string;

  async function bystanderServes(): Promise<void> {
    const r = await c.exec(bystander, { code: 'echo still here' });
    assert.equal(r.stdout, 'still here\n', 'the daemon must keep serving other sandboxes');
  }

  before(async () => {
    d = await startDaemon({ heartbeatMs: 500, heartbeatTimeoutMs: 3000 });
    c = d.client;
    bystander = (await c.create({ language_pack: 'shell' })).id;
  });

  after(async () => {
    await d?.close();
  });

  it('guest crash (kernel panic): detected, marked failed, VM freed', async () => {
    const v = await c.create({ language_pack: 'shell' });
    const pid = Number(v['vm_pid']);
    await c.exec(v.id, { code: 'echo c > /proc/sysrq-trigger' }).catch(() => {});
    await waitUntil(async () => (await c.inspect(v.id))['state'] === 'failed', 20_000, 'state failed');
    assert.match(String((await c.inspect(v.id))['failure']), /VM exited|channel lost/);
    assert.equal(processAlive(pid), false);
    await assert.rejects(
      c.exec(v.id, { code: 'true' }),
      (e: SandboxError) => e.code === 'sandbox_not_running' && e.status === 409,
    );
    await c.delete(v.id);
    await bystanderServes();
  });

  it('guest hang (vCPUs frozen): missed heartbeats mark it failed and free the VM', async () => {
    const v = await c.create({ language_pack: 'shell' });
    const sb = d.manager.get(v.id);
    await sb.vm.freezeForTest?.();
    await waitUntil(() => sb.state === 'failed', 15_000, 'state failed');
    assert.match(sb.failure ?? '', /stopped answering/);
    await waitUntil(() => !processAlive(sb.vm.pid), 5000, 'VM process gone');
    await c.delete(v.id);
    await bystanderServes();
  });

  describe('frames', () => {
    let v: string;
    before(async () => {
      v = (await c.create({ language_pack: 'shell' })).id;
    });
    after(async () => {
      await c.delete(v);
    });

    it('guest code cannot open the control port: the agent holds it exclusively', async () => {
      const port = '/dev/$(basename $(dirname $(grep -l airlock.ctl /sys/class/virtio-ports/*/name)))';
      const r = await c.exec(v, { code: `printf '\\377\\377\\377\\177garbage' > ${port}` });
      assert.notEqual(r.exit_code, 0);
      assert.match(r.stderr, /busy/i);
      assert.equal((await c.exec(v, { code: 'echo ok' })).stdout, 'ok\n');
      await bystanderServes();
    });

    it('oversized frame from the host: the guest refuses it, the channel resets, the sandbox recovers', async () => {
      const sb = d.manager.get(v);
      const broken = new Promise<SandboxError>((r) => sb.channel.once('broken', r));
      const head = Buffer.alloc(9);
      head.writeUInt32LE(0xfffffff0, 0);
      sb.channel.writeRawForTest(head);
      assert.match((await broken).message, /frame length out of bounds/);
      await sb.channel.settled();
      assert.equal((await c.exec(v, { code: 'echo ok' })).stdout, 'ok\n');
      await bystanderServes();
    });

    it('half-sent frame from the host, then the connection drops: the guest discards it', async () => {
      const sb = d.manager.get(v);
      const f = encode.exec(999, {
        argv: ['/bin/sh', '-c', 'touch /tmp/half'],
        env: [],
        cwd: '/',
        timeoutMs: 0,
        outputLimit: 0,
        stdin: false,
      });
      sb.channel.writeRawForTest(f.subarray(0, f.length - 3));
      sb.channel.breakForTest();
      await sb.channel.settled();
      const r = await c.exec(v, { code: 'test -e /tmp/half && echo ran || echo discarded' });
      assert.equal(r.stdout, 'discarded\n');
      await bystanderServes();
    });

    it('client disconnect mid-exec kills the guest process', async () => {
      const ac = new AbortController();
      const p = c.exec(v, { code: 'sleep 77; echo finished' }, ac.signal);
      await new Promise((r) => setTimeout(r, 1500));
      ac.abort();
      await assert.rejects(p);
      await waitUntil(
        async () => !(await c.exec(v, { code: 'ps -o args' })).stdout.includes('sleep 77'),
        5000,
        'sleep 77 to be killed',
      );
      await bystanderServes();
    });
  });

  it('slow boot: create gives up at the deadline with boot_timeout and leaves no VM', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'alsb-slow-'));
    const m = await SandboxManager.open({
      imageDir: testImageDir(),
      stateDir,
      accel: 'tcg',
      bootTimeoutMs: 300,
      defaultMemoryMb: 128,
    });
    try {
      await assert.rejects(
        m.create({ language_pack: 'shell' }),
        (e: SandboxError) => e.code === 'boot_timeout' && e.status === 504,
      );
      await waitUntil(() => vmPidsWith(stateDir).length === 0, 5000, 'no QEMU left');
      assert.deepEqual(
        readdirSync(stateDir).filter((f) => f.startsWith('sb_')),
        [],
        'no sandbox dir left',
      );
    } finally {
      await m.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
    await bystanderServes();
  });

  it('daemon restart: a live VM is re-adopted, a stale record is reaped, nothing is orphaned', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'alsb-rs-'));
    const main = fileURLToPath(new URL('../testing/daemon-main.js', import.meta.url));
    const start = async (): Promise<{ child: ChildProcess; client: SandboxClient }> => {
      const child = spawn(process.execPath, [main, stateDir], { stdio: ['ignore', 'pipe', 'inherit'] });
      const addr = await new Promise<string>((resolve, reject) => {
        let buf = '';
        child.stdout?.on('data', (b: Buffer) => {
          buf += b.toString();
          const m = /listening (\S+)/.exec(buf);
          if (m?.[1]) resolve(m[1]);
        });
        child.once('exit', (code) => reject(new Error(`daemon exited with ${code}`)));
      });
      return { child, client: new SandboxClient(addr) };
    };
    let daemon: Awaited<ReturnType<typeof start>> | undefined;
    try {
      daemon = await start();
      const sb = await daemon.client.create({ language_pack: 'shell' });
      await daemon.client.exec(sb.id, { code: 'echo survived > /root/mark' });
      daemon.child.kill('SIGKILL'); // a crash: no cleanup runs
      await new Promise((r) => daemon?.child.once('exit', r));
      assert.equal(processAlive(Number(sb['vm_pid'])), true, 'the VM outlives a crashed daemon');
      // A record for a VM that no longer exists.
      mkdirSync(join(stateDir, 'sb_000000000000'));
      writeFileSync(
        join(stateDir, 'sb_000000000000', 'record.json'),
        JSON.stringify({
          record: { backend: 'qemu', id: 'sb_000000000000', pid: 999_999, startTime: 1 },
          pack: 'shell',
          limits: {
            memory_mb: 192,
            vcpus: 1,
            rw_mb: 48,
            lifetime_s: null,
            exec_timeout_ms: 30000,
            max_output_bytes: 1048576,
          },
          env: {},
          createdAt: new Date().toISOString(),
        }),
      );
      daemon = await start();
      const { sandboxes } = await daemon.client.list();
      assert.deepEqual(
        sandboxes.map((s) => s.id),
        [sb.id],
      );
      assert.equal((await daemon.client.exec(sb.id, { code: 'cat /root/mark' })).stdout, 'survived\n');
      assert.equal(readdirSync(stateDir).includes('sb_000000000000'), false, 'stale record removed');
      // A second daemon on the same state dir would take the first one's VMs: refused.
      await assert.rejects(
        SandboxManager.open({ imageDir: testImageDir(), stateDir, accel: 'tcg' }),
        (e: SandboxError) => e.code === 'backend_unavailable' && /another sandbox daemon/.test(e.message),
      );
      daemon.child.kill('SIGTERM'); // a clean stop destroys what it owns
      await new Promise((r) => daemon?.child.once('exit', r));
      await waitUntil(() => vmPidsWith(stateDir).length === 0, 5000, 'no orphan QEMU');
    } finally {
      // A failed assertion must not leave the daemon process (and this test file) running.
      if (daemon && daemon.child.exitCode === null) daemon.child.kill('SIGKILL');
      for (const pid of vmPidsWith(stateDir)) process.kill(pid, 'SIGKILL');
      rmSync(stateDir, { recursive: true, force: true });
    }
    await bystanderServes();
  });
});
