/**
 * The warm pool: a create with default limits takes a pre-booted sandbox and
 * returns at once; the pool refills; a sandbox from the pool is as fresh and
 * as isolated as a cold one; stopping the daemon leaves no VM behind.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { processAlive } from '../backends/process-util.js';
import { startDaemon, vmPidsWith, waitUntil } from '../testing/harness.js';

describe('warm pool (qemu)', { timeout: 300_000 }, () => {
  it('hands out a pre-booted sandbox at once and refills', async () => {
    const d = await startDaemon({ warmPool: 1, warmPacks: ['shell'] });
    const pids: number[] = [];
    try {
      await waitUntil(() => d.manager.warmCounts()['shell'] === 1, 60_000, 'a warm shell sandbox');
      assert.deepEqual(await d.client.list(), { sandboxes: [] }, 'pooled sandboxes are not listed');
      const t = performance.now();
      const sb = await d.client.create({ language_pack: 'shell', env: { GREETING: 'warm' } });
      const ms = performance.now() - t;
      assert.equal(sb['warm'], true);
      assert.ok(ms < 1500, `create from the pool took ${ms.toFixed(0)} ms`);
      pids.push(Number(sb['vm_pid']));
      assert.equal((await d.client.exec(sb.id, { code: 'echo $GREETING; ls /root | wc -l' })).stdout, 'warm\n0\n');
      // Limits other than the pool's boot a fresh VM.
      const big = await d.client.create({ language_pack: 'shell', memory_mb: 224 });
      assert.equal(big['warm'], false);
      pids.push(Number(big['vm_pid']));
      await waitUntil(() => d.manager.warmCounts()['shell'] === 1, 60_000, 'the pool to refill');
      await d.client.delete(sb.id);
      await d.client.delete(big.id);
    } finally {
      await d.close();
    }
    for (const pid of pids) assert.equal(processAlive(pid), false);
    assert.deepEqual(vmPidsWith(d.stateDir), [], 'the pooled VM is gone too');
  });
});
