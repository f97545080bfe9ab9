/**
 * Create from a saved VM state: the first boot of a kind saves one in the
 * background; later creates restore it instead of booting. A restored guest
 * must be as fresh as a cold one: its own writable layer, fresh random state
 * (not the snapshot's), the host's clock, the caller's limits, no process or
 * file from another sandbox. Also through the warm pool.
 *
 * The RAM of a restored guest is the saved RAM image mapped copy-on-write from a
 * sealed memfd: clones share its pages until they write them, and no monitor can
 * change what the next sandbox starts from.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, openSync, readdirSync, readlinkSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SandboxClient } from '../client.js';
import { startDaemon, type TestDaemon, waitUntil } from '../testing/harness.js';

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

describe('snapshot restore (qemu)', { timeout: 600_000 }, () => {
  let d: TestDaemon;
  let c: SandboxClient;

  before(async () => {
    d = await startDaemon({ snapshots: true });
    c = d.client;
  });

  after(async () => {
    await d?.close();
  });

  it('saves a state after the first boot of a kind, then restores it for the next creates', async () => {
    const first = await c.create({ language_pack: 'shell' });
    assert.equal(first['restored'], false);
    await c.exec(first.id, { code: 'echo from-first > /root/first.txt' });
    await waitUntil(() => d.manager.snapshotCount() === 1, 120_000, 'the VM state to be saved');
    // Let the saved clock fall behind, so a missing correction would show.
    await new Promise((r) => setTimeout(r, 5000));
    const a = await c.create({ language_pack: 'shell', max_procs: 48, rw_mb: 12 });
    const b = await c.create({ language_pack: 'shell' });
    assert.equal(a['restored'], true);
    assert.equal(b['restored'], true);

    // Fresh random state: two clones of one saved state must not produce the same bytes.
    const rnd = 'head -c 16 /dev/urandom | od -An -tx1 | tr -d " \\n"';
    const [ra, rb] = await Promise.all([c.exec(a.id, { code: rnd }), c.exec(b.id, { code: rnd })]);
    assert.equal(ra.stdout.length, 32);
    assert.notEqual(ra.stdout, rb.stdout);
    // Nor the same boot id (the kernel makes it on first read: nothing may read it before the save).
    const bootId = 'cat /proc/sys/kernel/random/boot_id';
    const ids = await Promise.all([first, a, b].map(async (s) => (await c.exec(s.id, { code: bootId })).stdout.trim()));
    for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-/);
    assert.equal(new Set(ids).size, 3, `boot ids: ${ids.join(' ')}`);

    // The host's clock, not the saved one.
    const now = Date.now() / 1000;
    const guest = Number((await c.exec(a.id, { code: 'date +%s' })).stdout.trim());
    assert.ok(Math.abs(guest - now) < 4, `guest clock off by ${(guest - now).toFixed(1)} s`);

    // The caller's limits, applied at hand-out.
    const lim = await c.exec(a.id, { code: 'cat /sys/fs/cgroup/exec/pids.max; df -k / | tail -1' });
    const [pids, df] = lim.stdout.trim().split('\n');
    assert.equal(pids, '48');
    const sizeKb = Number(df?.trim().split(/\s+/)[1]);
    assert.ok(sizeKb > 8 * 1024 && sizeKb <= 12 * 1024, `writable layer ${sizeKb} kB`);

    // Its own writable layer, nothing of another sandbox, no process left from the saved VM.
    await c.exec(a.id, { code: 'echo only-a > /root/a.txt' });
    assert.equal((await c.exec(b.id, { code: 'ls /root | wc -l' })).stdout.trim(), '0');
    // User processes (kernel threads have an empty command line), minus this exec's own.
    const ps = (
      await c.exec(b.id, {
        code: 'for p in /proc/[0-9]*; do c=$(tr "\\0" " " < $p/cmdline 2>/dev/null); [ -n "$c" ] && echo "$c"; done',
      })
    ).stdout;
    const procs = ps
      .trim()
      .split('\n')
      .filter((l) => !/^(\/bin\/sh -c|tr )/.test(l));
    assert.deepEqual(procs, ['/init '], `processes: ${ps}`);

    // The saved state is device state only; the RAM image sits next to it, the daemon's alone.
    const snapDir = join(d.stateDir, '.snapshots');
    const files = readdirSync(snapDir);
    const state = files.find((f) => f.endsWith('.vmstate'));
    const ram = files.find((f) => f.endsWith('.ram'));
    assert.ok(state && ram, `snapshot files: ${files.join(' ')}`);
    assert.ok(statSync(join(snapDir, state)).size < 4 << 20, 'the state file carries no RAM');
    const ramStat = statSync(join(snapDir, ram));
    assert.equal(ramStat.mode & 0o777, 0o600);
    assert.equal(ramStat.uid, process.getuid?.());
    // Both clones map one sealed memfd: shared pages, and writing it is refused even to a
    // descriptor opened for writing (what a subverted monitor would try).
    const pa = d.manager.get(a.id).vm.pid;
    const pb = d.manager.get(b.id).vm.pid;
    assert.match(readlinkSync(`/proc/${pa}/fd/4`), /^\/memfd:airlock-snapshot-ram/);
    assert.equal(statSync(`/proc/${pa}/fd/4`).ino, statSync(`/proc/${pb}/fd/4`).ino);
    // After both clones ran and wrote (their writable layers live in guest RAM), the image
    // they map still holds exactly the saved RAM: their writes went to private copies.
    assert.equal(await sha256(`/proc/${pa}/fd/4`), await sha256(join(snapDir, ram)));
    const fd = openSync(`/proc/${pa}/fd/4`, 'r+');
    try {
      assert.throws(() => writeSync(fd, Buffer.from('tamper'), 0, 6, 4096), { code: 'EPERM' });
    } finally {
      closeSync(fd);
    }
    // The /proc the jail mounts for this shows the monitor's own pid namespace, pid entries only.
    const jailProc = readdirSync(`/proc/${pa}/root/proc`);
    assert.deepEqual(
      jailProc.filter((e) => /^\d+$/.test(e)),
      ['1'],
    );
    assert.ok(!jailProc.includes('sys') && !jailProc.includes('kcore'), `jail /proc: ${jailProc.join(' ')}`);
    for (const sb of [first, a, b]) await c.delete(sb.id);
  });

  it('refills the warm pool from the saved state', async () => {
    const w = await startDaemon({ snapshots: true, warmPool: 1, warmPacks: ['shell'] });
    try {
      // The pool's first VM boots; the state is saved; a hand-out refills from it.
      await waitUntil(() => w.manager.warmCounts()['shell'] === 1, 120_000, 'a warm sandbox');
      await waitUntil(() => w.manager.snapshotCount() === 1, 120_000, 'the saved state');
      const one = await w.client.create({ language_pack: 'shell' });
      await waitUntil(() => w.manager.warmCounts()['shell'] === 1, 60_000, 'the pool to refill');
      const two = await w.client.create({ language_pack: 'shell' });
      assert.equal(two['warm'], true);
      assert.equal(two['restored'], true);
      const rnd = 'head -c 16 /dev/urandom | od -An -tx1';
      assert.notEqual(
        (await w.client.exec(one.id, { code: rnd })).stdout,
        (await w.client.exec(two.id, { code: rnd })).stdout,
      );
    } finally {
      await w.close();
    }
  });
});
