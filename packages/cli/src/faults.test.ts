// Fault tolerance with real processes. kill -9 of the runner and of the server at chosen
// points of a run (test-only kill points: AIRLOCK_TEST_KILL_AT, inert unless set, see
// packages/runner/src/client/kill-point.ts and packages/server/src/runners/kill-point.ts),
// PostgreSQL restarted under a running control plane, network trouble made with a loopback
// proxy (latency, drops, half-open, a slow reader), and a full disk under the runner's log.
// After each: no lost audit event, no duplicate execution, no result for a request never
// received, and both chains verify. (The sandbox daemon's kill -9 case is in
// packages/sandbox/src/e2e/faults.test.ts.)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { testDatabases } from '@airlock/server/testing';
import { FaultRig, memoryOf } from './testing/fault-rig.js';
import { repoRoot, until } from './testing/processes.js';
import { startRestartablePg } from './testing/restartable-pg.js';
import { TcpProxy } from './testing/tcp-proxy.js';

const showcase = join(repoRoot, 'packs', 'showcase');
const exited = (p: { child: { exitCode: number | null; signalCode: string | null } }) =>
  until(() => p.child.exitCode !== null || p.child.signalCode !== null, 30_000, 'the process to die');

for (const { name, create } of testDatabases()) {
  describe(`kill -9 at chosen points of a run (${name})`, () => {
    let t: Awaited<ReturnType<typeof create>>;
    let rig: FaultRig;
    let dir: string;

    before(async () => {
      t = await create();
      dir = mkdtempSync(join(tmpdir(), 'airlock-faults-'));
      rig = new FaultRig(dir, t.url);
      await rig.startServer();
      await rig.startRunner('k1', { packs: [showcase] });
      await rig.trustAll();
    });
    after(async () => {
      await rig?.stopAll();
      await t?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    const runnerPoints: [string, string, string | null][] = [
      // [kill point, final status, error code]
      ['runner_before_accept', 'success', null], // never received durably: dispatched again, runs once
      ['runner_during_output', 'error', 'runner_restarted'], // interrupted: reported, never re-run
      ['runner_after_exec_before_result', 'success', null], // the logged attempt is reported, not a second one
      ['runner_after_result_before_ack', 'success', null], // re-sent from the outbox, stored once
    ];
    for (const [point, status, code] of runnerPoints) {
      test(`runner killed at ${point}`, async () => {
        await rig.runners.get('k1')!.kill('SIGKILL');
        const doomed = await rig.startRunner('k1', { env: { AIRLOCK_TEST_KILL_AT: point } });
        const id = await rig.run('k1', 'showcase.count', { n: 3, delay_ms: 300 });
        await exited(doomed);
        assert.equal(doomed.child.signalCode, 'SIGKILL');
        if (point === 'runner_before_accept') {
          // No result (and no attempt) for a request the runner never took.
          assert.equal(rig.attempts('k1', id).length, 0);
          assert.equal((await rig.status(id)).status, 'dispatched');
        }
        await rig.startRunner('k1');
        const done = await rig.final(id);
        assert.equal(done.status, status, JSON.stringify(done));
        assert.equal(done.error?.code ?? null, code);
        await rig.assertExactlyOnce('k1', [id]);
      });
    }

    for (const point of ['server_after_finalise_before_audit', 'server_after_result_before_ack']) {
      test(`server killed at ${point}`, async () => {
        await rig.server!.kill('SIGKILL');
        await rig.startServer({ AIRLOCK_TEST_KILL_AT: point });
        // The runner reconnects by itself; a run requested before its hello waits queued.
        const id = await rig.run('k1', 'showcase.echo', { message: point });
        await exited(rig.server!);
        await rig.startServer();
        const done = await rig.final(id);
        assert.equal(done.status, 'success');
        // The run.result the dead server never wrote is written when the runner re-sends.
        await rig.assertExactlyOnce('k1', [id]);
      });
    }
  });
}

describe('PostgreSQL restarted under a running control plane', () => {
  let pg: Awaited<ReturnType<typeof startRestartablePg>>;
  let rig: FaultRig;
  let dir: string;

  before(async () => {
    pg = await startRestartablePg();
    dir = mkdtempSync(join(tmpdir(), 'airlock-faults-pg-'));
    rig = new FaultRig(dir, pg.url);
    await rig.startServer();
    await rig.startRunner('p1', { packs: [showcase] });
    await rig.trustAll();
  });
  after(async () => {
    await rig?.stopAll();
    await pg?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('restart during output: the run finishes once and the chains verify', async () => {
    const id = await rig.run('p1', 'showcase.count', { n: 6, delay_ms: 400 });
    await until(async () => (await rig.status(id)).status === 'running', 10_000, 'running');
    await pg.stop();
    await new Promise((r) => setTimeout(r, 500));
    await pg.start();
    const done = await rig.final(id);
    assert.equal(done.status, 'success');
    await rig.assertExactlyOnce('p1', [id]);
  });

  test('down while the result arrives: stored after Postgres is back, once', async () => {
    const id = await rig.run('p1', 'showcase.count', { n: 2, delay_ms: 300 });
    await until(async () => (await rig.status(id)).status === 'running', 10_000, 'running');
    await pg.stop();
    // The action ends while the database is down: the result is refused (not acked) and kept.
    await until(() => rig.attempts('p1', id).length === 1, 10_000, 'the attempt to finish on the runner');
    await new Promise((r) => setTimeout(r, 1000));
    await pg.start();
    const done = await rig.final(id, 180_000).catch((e: Error) => {
      throw new Error(
        `${e.message}\nserver output:\n${rig.server?.output().slice(-3000)}\nrunner output:\n${rig.runners.get('p1')?.output().slice(-3000)}`,
      );
    });
    assert.equal(done.status, 'success');
    await rig.assertExactlyOnce('p1', [id]);
    // New work flows again.
    const again = await rig.run('p1', 'showcase.echo', { message: 'after' });
    assert.equal((await rig.final(again)).status, 'success');
  });
});

describe('network trouble between runner and server (loopback proxy)', () => {
  // The fault is on the runner's connection, not in the database: SQLite is enough here.
  let rig: FaultRig;
  let dir: string;
  let proxy: TcpProxy;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'airlock-faults-net-'));
    rig = new FaultRig(dir, join(dir, 'airlock.db'));
    await rig.startServer();
    proxy = await TcpProxy.start([rig.port]);
    // A pack that floods its output, for the slow reader.
    mkdirSync(join(dir, 'flood', 'actions'), { recursive: true });
    writeFileSync(
      join(dir, 'flood', 'pack.yaml'),
      'name: flood\nversion: 1.0.0\nnamespace: flood\ndescription: Floods output.\n',
    );
    writeFileSync(
      join(dir, 'flood', 'actions', 'lines.yaml'),
      `id: flood.lines
title: Lines
description: Prints n lines of 1000 characters.
risk: read
kind: exec
argv: ["python3", "-c", "import sys\\nline = 'x' * 1000\\nfor i in range(int(sys.argv[1])): print(line)", "{{n}}"]
args:
  n: { type: integer, min: 1, max: 100000, required: true }
limits: { timeout_s: 120, timeout_s_max: 120, output_bytes: 67108864, output_bytes_max: 67108864 }
`,
    );
    await rig.startRunner('n1', { packs: [showcase, join(dir, 'flood')], server: proxy.url });
    await rig.trustAll();
  });
  after(async () => {
    await rig?.stopAll();
    await proxy?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('latency: output streams and the run finishes', async () => {
    proxy.faults.latencyMs = 150;
    try {
      const id = await rig.run('n1', 'showcase.count', { n: 3, delay_ms: 50 });
      assert.equal((await rig.final(id)).status, 'success');
      assert.equal((await rig.api('GET', `/api/v1/runs/${id}/output`)).body.lines.length, 3);
      await rig.assertExactlyOnce('n1', [id]);
    } finally {
      proxy.faults.latencyMs = 0;
    }
  });

  test('dropped connections mid-run: the result arrives after reconnecting, once', async () => {
    const id = await rig.run('n1', 'showcase.count', { n: 6, delay_ms: 400 });
    await until(async () => (await rig.status(id)).status === 'running', 10_000, 'running');
    proxy.dropAll();
    await new Promise((r) => setTimeout(r, 800));
    proxy.dropAll();
    assert.equal((await rig.final(id)).status, 'success');
    await rig.assertExactlyOnce('n1', [id]);
  });

  test('half-open connection: the result sent into the void is re-sent on the next connection', async () => {
    const id = await rig.run('n1', 'showcase.count', { n: 3, delay_ms: 300 });
    await until(async () => (await rig.status(id)).status === 'running', 10_000, 'running');
    proxy.faults.blackhole = true;
    await until(() => rig.attempts('n1', id).length === 1, 10_000, 'the attempt to finish on the runner');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await rig.status(id)).status, 'running', 'the server never saw the result');
    // The half-open connection finally breaks (TCP timeout, heartbeat): reset it.
    proxy.faults.blackhole = false;
    proxy.dropAll();
    assert.equal((await rig.final(id)).status, 'success');
    await rig.assertExactlyOnce('n1', [id]);
  });

  test('slow reader: the runner drops live output instead of buffering it; memory stays bounded', async (t) => {
    const runner = rig.runners.get('n1')!;
    const pid = runner.child.pid!;
    const before = memoryOf(pid);
    proxy.setStall(true);
    // ~48 MiB of output while the server side reads nothing.
    const id = await rig.run('n1', 'flood.lines', { n: 48_000 }, { output_bytes: 67_108_864 });
    await until(() => rig.attempts('n1', id).length === 1, 120_000, 'the flood to finish on the runner');
    const peak = memoryOf(pid).hwm;
    proxy.setStall(false);
    proxy.dropAll();
    const done = await rig.final(id, 60_000);
    assert.equal(done.status, 'success');
    const grew = peak - before.hwm;
    // Unbounded buffering would hold the whole 48 MiB twice (string and frame): 96 MiB and more.
    // Short-lived garbage alone (each line is a string, a frame and its JSON) moves the peak by
    // 20-50 MiB with GC timing, so the bound sits between the two.
    assert.ok(grew < 64 * 1024 * 1024, `runner peak memory grew by ${(grew / 1048576).toFixed(1)} MiB`);
    const lines = (await rig.api('GET', `/api/v1/runs/${id}/output?limit=10000`)).body.lines.length;
    t.diagnostic(
      `runner peak RSS grew ${(grew / 1048576).toFixed(1)} MiB for 48 MiB of output; ${lines} lines stored live`,
    );
    assert.ok(lines < 48_000, `live output was dropped under backpressure (${lines} lines stored)`);
    await rig.assertExactlyOnce('n1', [id]);
  });
});

describe('disk full under the runner security log', {
  skip: process.getuid?.() !== 0 ? 'needs root to mount a tmpfs' : false,
}, () => {
  let rig: FaultRig;
  let dir: string;
  let mnt: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'airlock-faults-disk-'));
    mnt = join(dir, 'small');
    mkdirSync(mnt);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', mnt], { encoding: 'utf8' });
    assert.equal(m.status, 0, m.stderr);
    rig = new FaultRig(dir, join(dir, 'airlock.db'));
    await rig.startServer();
    // The runner's home, log and outbox live on the 4 MiB tmpfs.
    rig.home = (rn: string) => join(mnt, rn);
    await rig.startRunner('d1', { packs: [showcase] });
    await rig.trustAll();
  });
  after(async () => {
    await rig?.stopAll();
    spawnSync('umount', ['-l', mnt]);
    rmSync(dir, { recursive: true, force: true });
  });

  test('a full disk: new work is refused with a clear error and nothing runs unlogged', async () => {
    const ok = await rig.run('d1', 'showcase.echo', { message: 'before' });
    assert.equal((await rig.final(ok)).status, 'success');
    const s = statfsSync(mnt);
    const filler = join(mnt, 'filler');
    writeFileSync(filler, Buffer.alloc(Math.max(0, s.bavail * s.bsize - 256 * 1024)));
    const id = await rig.run('d1', 'showcase.echo', { message: 'while full' });
    const done = await rig.final(id);
    assert.equal(done.status, 'error');
    assert.equal(done.error?.code, 'runner_log_unavailable');
    assert.match(done.error?.message ?? '', /nothing ran: .*bytes free/);
    assert.equal(rig.attempts('d1', id).length, 0, 'nothing ran, so nothing was recorded');
    assert.equal((await rig.api('GET', `/api/v1/runs/${id}/output`)).body.lines.length, 0);
    assert.match(rig.runners.get('d1')!.output(), /refused showcase\.echo/);
    rmSync(filler);
    const after = await rig.run('d1', 'showcase.echo', { message: 'after' });
    assert.equal((await rig.final(after)).status, 'success');
    await rig.assertExactlyOnce('d1', [ok, after]);
  });
});
