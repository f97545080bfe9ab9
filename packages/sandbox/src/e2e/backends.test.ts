/**
 * One contract suite for every backend (qemu, gvisor, firecracker): the same
 * lifecycle checks run on each that can run on this host; the others are
 * skipped with the reason their probe gave.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { BackendName } from '../backends/types.js';
import { SandboxError } from '../errors.js';
import { SandboxManager } from '../manager.js';
import { ensureImages, testImageDir } from '../testing/harness.js';

const expectedIsolation: Record<BackendName, string> = {
  qemu: 'microvm',
  gvisor: 'user-space-kernel',
  firecracker: 'microvm',
};

for (const backend of ['qemu', 'gvisor', 'firecracker'] as const) {
  describe(`backend contract: ${backend}`, { timeout: 300_000 }, () => {
    it('create → exec → files across execs → stream → timeout → isolation → delete', async (t) => {
      await ensureImages();
      const stateDir = mkdtempSync(join(tmpdir(), `alsb-${backend}-`));
      let m: SandboxManager;
      try {
        m = await SandboxManager.open({
          imageDir: testImageDir(),
          stateDir,
          backend,
          accel: 'tcg',
          defaultMemoryMb: 192,
        });
      } catch (e) {
        rmSync(stateDir, { recursive: true, force: true });
        if (e instanceof SandboxError && e.code === 'backend_unavailable') {
          t.skip(e.message);
          return;
        }
        throw e;
      }
      try {
        assert.equal(m.info()['isolation'], expectedIsolation[backend]);
        const a = await m.create({ language_pack: 'shell' });
        const b = await m.create({ language_pack: 'shell' });
        assert.equal(a.describe()['backend'], backend);
        assert.equal((await a.exec({ code: 'echo $((6*7))' })).stdout, '42\n');
        await a.exec({ code: 'echo kept > /root/f' });
        assert.equal((await a.exec({ code: 'cat /root/f' })).stdout, 'kept\n');
        const seen: string[] = [];
        await a.exec({ code: 'echo one; sleep 0.2; echo two' }, (e) => e.type === 'stdout' && seen.push(e.data));
        assert.equal(seen.join(''), 'one\ntwo\n');
        const slow = await a.exec({ code: 'sleep 30', timeout_ms: 500 });
        assert.equal(slow.timed_out, true);
        const other = await b.exec({ code: 'cat /root/f' });
        assert.notEqual(other.exit_code, 0, 'sandboxes must not share files');
        assert.equal(
          (await b.exec({ code: 'ls /sys/class/net 2>/dev/null || echo none' })).stdout.trim().replace('none', 'lo'),
          'lo',
        );
        await m.delete(a.id);
        await m.delete(b.id);
        assert.equal(m.list().length, 0);
      } finally {
        await m.close();
        rmSync(stateDir, { recursive: true, force: true });
      }
    });
  });
}
