import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { type ProcessOutcome, runProcess, type SpawnBackend, type SpawnPlan, spawnHelper } from '../process-runner.js';
import { pidAlive, tempDir, waitFor } from '../testing/fixture.js';
import { ensureSpawnerBuilt } from '../testing/spawner-build.js';
import {
  encodeSpawn,
  FRAME,
  FrameDecoder,
  type HelperFrame,
  MAX_HELPER_FRAME,
  SpawnerProtocolError,
} from './frames.js';

ensureSpawnerBuilt();

const limits = { timeout_s: 10, output_bytes: 1 << 20 };
const plan = (file: string, args: string[], extra: Partial<SpawnPlan> = {}): SpawnPlan => ({
  file,
  args,
  env: { PATH: '/usr/bin:/bin' },
  cwd: '/',
  limits,
  ...extra,
});

async function collect(
  p: SpawnPlan,
  backend: SpawnBackend,
  signal?: AbortSignal,
): Promise<{ out: ProcessOutcome; stdout: string[]; stderr: string[] }> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const out = await runProcess(p, (s, line) => (s === 'stdout' ? stdout : stderr).push(line), {
    backend,
    ...(signal === undefined ? {} : { signal }),
  });
  return { out, stdout, stderr };
}

for (const backend of ['helper', 'exec'] as const) {
  describe(`process runner, ${backend} path`, () => {
    test('argv stays literal, env is exactly what was given, exit codes and streams come back', async () => {
      const r = await collect(
        plan('/bin/sh', ['-c', 'echo "$1"; echo err >&2; env | sort; exit 3', 'sh', '$(touch /nonexistent) ;|&'], {
          env: { PATH: '/usr/bin:/bin', ONLY: 'this' },
        }),
        backend,
      );
      assert.equal(r.out.exitCode, 3);
      assert.equal(r.out.signal, null);
      assert.equal(r.out.spawnError, undefined);
      assert.equal(r.stdout[0], '$(touch /nonexistent) ;|&');
      assert.deepEqual(r.stderr, ['err']);
      // sh adds PWD (and SHLVL on some shells) itself; nothing from the runner leaks in.
      const vars = r.stdout.slice(1).map((l) => l.split('=')[0]);
      assert.ok(vars.includes('ONLY') && vars.includes('PATH'), vars.join(','));
      assert.ok(!vars.includes('HOME') && !vars.includes('AIRLOCK_TEST_PG_URL'), vars.join(','));
    });

    test('own process group and session; stdin is /dev/null; cwd applied', async () => {
      const r = await collect(
        plan('/bin/sh', ['-c', 'cat; ps -o pid=,pgid=,sid= -p $$; pwd'], { cwd: '/tmp' }),
        backend,
      );
      assert.equal(r.out.exitCode, 0);
      const [pid, pgid, sid] = (r.stdout[0] ?? '').trim().split(/\s+/);
      assert.equal(pgid, pid, r.stdout.join('|'));
      assert.equal(sid, pid);
      assert.equal(r.stdout[1], '/tmp');
    });

    // Helper path only: the helper closes every inherited descriptor at start. On the fallback
    // path a descriptor the runner itself inherited without close-on-exec (from whatever started
    // it) reaches the action, because Node cannot close it and setpriv does not (docs/architecture.md).
    if (backend === 'helper')
      test('the action holds only its own stdin, stdout and stderr: no descriptor of the runner leaks in', async () => {
        const r = await collect(plan('/bin/sh', ['-c', 'ls /proc/$$/fd']), backend);
        assert.equal(r.out.exitCode, 0, r.stderr.join('|'));
        assert.deepEqual(r.stdout.map(Number).sort(), [0, 1, 2], r.stdout.join(','));
      });

    test('declared rlimits are applied', async () => {
      const r = await collect(
        plan('/bin/sh', ['-c', 'ulimit -n; ulimit -t'], { limits: { ...limits, max_files: 64, cpu_s: 7 } }),
        backend,
      );
      assert.deepEqual(r.stdout, ['64', '7']);
    });

    test('a missing binary is a spawn error, not a crash', async () => {
      const r = await collect(plan('/nonexistent/binary', []), backend);
      if (backend === 'exec' && r.out.spawnError === undefined) {
        // setpriv started and its execve failed: it reports that with exit code 127.
        assert.equal(r.out.exitCode, 127, JSON.stringify(r.out));
        return;
      }
      assert.ok(r.out.spawnError !== undefined, JSON.stringify(r.out));
      assert.match(r.out.spawnError, /execve: ENOENT/);
    });

    test('a NUL byte in an argument is refused before anything runs', async () => {
      await assert.rejects(collect(plan('/bin/echo', ['a\0b']), backend));
    });

    test('timeout kills the whole group, grandchildren included', async () => {
      const t = tempDir();
      try {
        const pidfile = join(t.dir, 'gc');
        const r = await collect(
          plan('/bin/sh', ['-c', `sleep 300 & echo $! > ${pidfile}; echo started; wait`], {
            limits: { ...limits, timeout_s: 1 },
          }),
          backend,
        );
        assert.equal(r.out.timedOut, true);
        assert.deepEqual(r.stdout, ['started']);
        const gc = Number.parseInt(readFileSync(pidfile, 'utf8'), 10);
        assert.ok(await waitFor(() => !pidAlive(gc), 5000), `grandchild ${gc} survived`);
      } finally {
        t.cleanup();
      }
    });

    test('cancel terminates the group', async () => {
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 200);
      const r = await collect(plan('/bin/sleep', ['300']), backend, ac.signal);
      assert.equal(r.out.cancelled, true);
      assert.equal(r.out.signal, 'SIGTERM');
    });

    test('output cap truncates and kills', async () => {
      const started = Date.now();
      const r = await collect(plan('/usr/bin/yes', ['y'], { limits: { ...limits, output_bytes: 4096 } }), backend);
      assert.equal(r.out.truncated, true);
      assert.equal(r.out.outputBytes, 4096);
      assert.ok(r.out.exitCode === null && r.out.signal === 'SIGKILL', JSON.stringify(r.out));
      assert.ok(Date.now() - started < 8000);
    });

    test('many actions at once keep their output apart', async () => {
      const rs = await Promise.all(
        Array.from({ length: 24 }, (_, i) => collect(plan('/bin/sh', ['-c', `echo a${i}; echo b${i} >&2`]), backend)),
      );
      rs.forEach((r, i) => {
        assert.deepEqual(r.stdout, [`a${i}`]);
        assert.deepEqual(r.stderr, [`b${i}`]);
        assert.equal(r.out.exitCode, 0);
      });
    });
  });
}

describe('spawn helper lifecycle', () => {
  test('SIGKILL of the helper kills the running action (its own pdeathsig) and is reported', async () => {
    const helper = spawnHelper();
    assert.ok(helper !== undefined);
    let pid = 0;
    const p = runProcess(
      plan('/bin/sh', ['-c', 'echo $$; exec sleep 300']),
      (_s, line) => {
        pid = Number.parseInt(line, 10);
      },
      { backend: 'helper' },
    );
    assert.ok(await waitFor(() => pid > 0, 5000));
    const hp = helper.pid;
    assert.ok(hp !== undefined);
    process.kill(hp, 'SIGKILL');
    const out = await p;
    assert.match(out.lostError ?? '', /spawn helper exited/);
    assert.ok(await waitFor(() => !pidAlive(pid), 5000), `action ${pid} survived the helper`);
    // The next action starts a fresh helper.
    const again = await collect(plan('/bin/echo', ['ok']), 'helper');
    assert.deepEqual(again.stdout, ['ok']);
    assert.notEqual(helper.pid, hp);
  });

  test('killing the runner with SIGKILL kills the action and its grandchildren (helper on SIGTERM kills groups)', async () => {
    const t = tempDir();
    try {
      const pidfile = join(t.dir, 'gc');
      const child = resolve(fileURLToPath(import.meta.url), '../../testing/spawner-child.js');
      const runner = spawn(process.execPath, [child, pidfile], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      runner.stdout.on('data', (c: Buffer) => {
        out += c.toString();
      });
      assert.ok(await waitFor(() => /^\d+\n/.test(out), 10_000), `action never started: ${out}`);
      const actionPid = Number.parseInt(out, 10);
      const gc = Number.parseInt(readFileSync(pidfile, 'utf8'), 10);
      assert.ok(pidAlive(actionPid) && pidAlive(gc));
      runner.kill('SIGKILL');
      assert.ok(await waitFor(() => !pidAlive(actionPid), 5000), `action ${actionPid} survived the runner`);
      assert.ok(await waitFor(() => !pidAlive(gc), 5000), `grandchild ${gc} survived the runner`);
    } finally {
      t.cleanup();
    }
  });

  test('a garbage request frame makes the helper kill its actions and exit', async () => {
    const helper = spawnHelper();
    assert.ok(helper !== undefined);
    let pid = 0;
    const p = runProcess(
      plan('/bin/sh', ['-c', 'echo $$; exec sleep 300']),
      (_s, line) => {
        pid = Number.parseInt(line, 10);
      },
      { backend: 'helper' },
    );
    assert.ok(await waitFor(() => pid > 0, 5000));
    // Reach into the helper's stdin the way a bug in the runner would.
    const stdin = (helper as unknown as { child: { stdin: NodeJS.WritableStream } }).child.stdin;
    stdin.write(Buffer.from([9, 0, 0, 0, 0x7f, 1, 0, 0, 0, 0, 0, 0, 0]));
    const out = await p;
    assert.match(out.lostError ?? '', /exited \(code 3\)/);
    assert.ok(await waitFor(() => !pidAlive(pid), 5000));
  });
});

/** Encode a helper → runner frame (the helper's side of the protocol, for the decoder tests). */
function helperFrame(f: HelperFrame): Buffer {
  let type: number;
  let payload: Buffer;
  switch (f.type) {
    case 'started':
      type = FRAME.started;
      payload = Buffer.alloc(4);
      payload.writeUInt32LE(f.pid, 0);
      break;
    case 'stdout':
    case 'stderr':
      type = f.type === 'stdout' ? FRAME.stdout : FRAME.stderr;
      payload = f.data;
      break;
    case 'exit':
      type = FRAME.exit;
      payload = Buffer.alloc(5);
      payload.writeUInt8(f.signalled ? 1 : 0, 0);
      payload.writeUInt32LE(f.value, 1);
      break;
    case 'failed': {
      type = FRAME.failed;
      const s = Buffer.from(f.stage);
      payload = Buffer.alloc(8 + s.length);
      payload.writeUInt32LE(f.errno, 0);
      payload.writeUInt32LE(s.length, 4);
      s.copy(payload, 8);
      break;
    }
  }
  const h = Buffer.alloc(9);
  h.writeUInt32LE(5 + payload.length, 0);
  h.writeUInt8(type, 4);
  h.writeUInt32LE(f.id, 5);
  return Buffer.concat([h, payload]);
}

const arbFrame: fc.Arbitrary<HelperFrame> = fc.oneof(
  fc.record({ type: fc.constant('started' as const), id: fc.nat(), pid: fc.nat() }),
  fc.record({
    type: fc.constantFrom('stdout' as const, 'stderr' as const),
    id: fc.nat(),
    data: fc.uint8Array({ minLength: 1, maxLength: 300 }).map((a) => Buffer.from(a)),
  }),
  fc.record({ type: fc.constant('exit' as const), id: fc.nat(), signalled: fc.boolean(), value: fc.nat(255) }),
  fc.record({
    type: fc.constant('failed' as const),
    id: fc.nat(),
    errno: fc.nat(200),
    stage: fc.stringMatching(/^[a-z /]{0,20}$/),
  }),
);

describe('spawn helper frames', () => {
  test('frames round-trip through the decoder however the stream is chunked', () => {
    fc.assert(
      fc.property(fc.array(arbFrame, { maxLength: 20 }), fc.array(fc.nat(400), { maxLength: 30 }), (frames, cuts) => {
        const bytes = Buffer.concat(frames.map(helperFrame));
        const d = new FrameDecoder();
        const got: HelperFrame[] = [];
        let off = 0;
        for (const c of cuts) {
          const end = Math.min(bytes.length, off + c);
          got.push(...d.push(bytes.subarray(off, end)));
          off = end;
        }
        got.push(...d.push(bytes.subarray(off)));
        assert.equal(d.pending, 0);
        assert.deepEqual(
          got,
          frames.map((f) => ({ ...f })),
        );
      }),
    );
  });

  test('arbitrary bytes either decode or raise a protocol error, never anything else', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 10 }), (chunks) => {
        const d = new FrameDecoder();
        try {
          for (const c of chunks) d.push(Buffer.from(c));
        } catch (e) {
          assert.ok(e instanceof SpawnerProtocolError, String(e));
        }
      }),
    );
  });

  test('oversized, unknown and malformed frames are refused', () => {
    const bad = (b: Buffer): void => assert.throws(() => new FrameDecoder().push(b), SpawnerProtocolError);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(MAX_HELPER_FRAME + 1, 0);
    bad(len);
    bad(Buffer.from([4, 0, 0, 0, 0x81, 0, 0, 0]));
    bad(Buffer.from([5, 0, 0, 0, 0x42, 1, 0, 0, 0]));
    bad(Buffer.from([6, 0, 0, 0, 0x81, 1, 0, 0, 0, 7])); // started with 1 byte of pid
    bad(Buffer.from([10, 0, 0, 0, 0x84, 1, 0, 0, 0, 2, 1, 0, 0, 0])); // exit how=2
    bad(Buffer.from([5, 0, 0, 0, 0x82, 1, 0, 0, 0])); // empty output
    const f = helperFrame({ type: 'failed', id: 1, errno: 2, stage: 'exec' });
    f.writeUInt32LE(99, 13); // stage length beyond the frame
    bad(f);
  });

  test('spawn requests refuse relative paths and NUL bytes', () => {
    const base = { id: 1, cwd: '/', env: [], rlimits: [] };
    assert.throws(() => encodeSpawn({ ...base, file: 'echo', argv: ['echo'] }));
    assert.throws(() => encodeSpawn({ ...base, file: '/bin/echo', argv: ['/bin/echo', 'a\0'] }));
    assert.throws(() => encodeSpawn({ ...base, file: '/bin/echo', argv: [] }));
    writeFileSync('/dev/null', encodeSpawn({ ...base, file: '/bin/echo', argv: ['/bin/echo', 'ok'] }));
  });
});
