/**
 * airlock-init's protocol handling, exercised on the host in `--stdio` mode
 * (the mode the gVisor backend uses): the same event loop, framing and
 * process handling as in a VM, without booting one. Plus a short libFuzzer
 * run over the frame decoders.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { processAlive } from '../backends/process-util.js';
import type { SandboxError } from '../errors.js';
import { compileAgent } from '../images/builder.js';
import { guestSourceDir } from '../paths.js';
import { GuestChannel } from './channel.js';
import { encode, MAX_FRAME } from './protocol.js';

const hasMusl = existsSync('/usr/bin/musl-gcc');
const work = mkdtempSync(join(tmpdir(), 'agent-test-'));
const agentPath = join(work, 'airlock-init');

function startAgent(): { child: ChildProcess; channel: GuestChannel } {
  const child = spawn(agentPath, ['--stdio'], { stdio: ['pipe', 'pipe', 'inherit'] });
  let used = false;
  const channel = new GuestChannel(async () => {
    // A pipe pair cannot be reopened: the first connection is the only one.
    if (used) throw new Error('stdio channel cannot reconnect');
    used = true;
    return Duplex.from({ readable: child.stdout, writable: child.stdin });
  });
  return { child, channel };
}

async function run(
  ch: GuestChannel,
  argv: string[],
  opts: { stdin?: string; timeoutMs?: number; outputLimit?: number; env?: string[]; cwd?: string } = {},
) {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let pid = 0;
  const p = ch.exec(
    {
      argv,
      env: opts.env ?? ['PATH=/usr/bin:/bin'],
      cwd: opts.cwd ?? '/',
      timeoutMs: opts.timeoutMs ?? 10_000,
      outputLimit: opts.outputLimit ?? 1 << 20,
      stdin: opts.stdin !== undefined,
    },
    { onStdout: (d) => out.push(d), onStderr: (d) => err.push(d), onStarted: (x) => (pid = x) },
  );
  if (opts.stdin !== undefined) {
    await p.writeStdin(Buffer.from(opts.stdin));
    p.closeStdin();
  }
  const exit = await p.done;
  return { ...exit, pid, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

describe('airlock-init (host, --stdio)', {
  skip: !hasMusl && 'musl-gcc not installed (apt-get install musl-tools)',
}, () => {
  let child: ChildProcess;
  let ch: GuestChannel;

  before(async () => {
    compileAgent(guestSourceDir(), agentPath);
    ({ child, channel: ch } = startAgent());
    await ch.handshake(Date.now() + 5000);
  });

  after(() => {
    ch.close();
    child.kill('SIGKILL');
  });

  it('answers pings', async () => {
    const ms = await ch.ping(2000);
    assert.ok(ms >= 0);
  });

  it('runs argv with env and cwd, reporting stdout, stderr and the exit code', async () => {
    const r = await run(ch, ['/bin/sh', '-c', 'echo "$GREETING $(pwd)"; echo oops >&2; exit 3'], {
      env: ['PATH=/usr/bin:/bin', 'GREETING=hi'],
      cwd: '/tmp',
    });
    assert.equal(r.stdout, 'hi /tmp\n');
    assert.equal(r.stderr, 'oops\n');
    assert.equal(r.exitCode, 3);
    assert.equal(r.timedOut, false);
  });

  it('feeds stdin and closes it', async () => {
    const r = await run(ch, ['/bin/cat'], { stdin: 'line one\nline two\n' });
    assert.equal(r.stdout, 'line one\nline two\n');
  });

  it('reports a missing program as exit 127 with a message', async () => {
    const r = await run(ch, ['/nonexistent/program']);
    assert.equal(r.exitCode, 127);
    assert.match(r.stderr, /No such file/);
  });

  it('kills the whole process tree on timeout, including children that outlive the parent', async () => {
    const r = await run(ch, ['/bin/sh', '-c', 'sleep 60 & echo $!; sleep 60'], { timeoutMs: 500 });
    assert.equal(r.timedOut, true);
    assert.equal(r.signal, 9);
    const bg = Number(r.stdout.trim());
    assert.ok(bg > 0);
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(processAlive(bg), false, 'the background sleep must be gone');
  });

  it('caps output and says so, without stopping the process', async () => {
    const r = await run(ch, ['/bin/sh', '-c', 'head -c 100000 /dev/zero; echo done >&2'], { outputLimit: 1000 });
    assert.equal(r.truncated, true);
    assert.equal(r.stdout.length + r.stderr.length, 1000);
    assert.equal(r.exitCode, 0);
  });

  it('runs processes concurrently', async () => {
    const rs = await Promise.all(
      Array.from({ length: 8 }, (_, i) => run(ch, ['/bin/sh', '-c', `sleep 0.2; echo ${i}`])),
    );
    assert.deepEqual(
      rs.map((r) => r.stdout),
      Array.from({ length: 8 }, (_, i) => `${i}\n`),
    );
  });

  it('uploads and downloads files in chunks, creating parent directories', async () => {
    const path = join(work, 'sub', 'dir', 'f.bin');
    const data = Buffer.alloc(200_000, 7);
    const size = await ch.putFile(
      path,
      0o640,
      (async function* () {
        yield data.subarray(0, 70_000);
        yield data.subarray(70_000);
      })(),
    );
    assert.equal(size, data.length);
    assert.deepEqual(readFileSync(path), data);
    const chunks: Buffer[] = [];
    assert.equal(await ch.getFile(path, (c) => chunks.push(c)), data.length);
    assert.deepEqual(Buffer.concat(chunks), data);
    await assert.rejects(
      ch.getFile(join(work, 'missing'), () => {}),
      (e: SandboxError) => e.code === 'file_not_found',
    );
    await assert.rejects(
      ch.getFile(work, () => {}),
      (e: SandboxError) => e.code === 'file_not_found',
      'a directory is not a file',
    );
  });

  it('answers an oversized frame with a protocol error; the host resets the channel', async () => {
    const { child: c2, channel: ch2 } = startAgent();
    try {
      await ch2.handshake(Date.now() + 5000);
      const broken = new Promise<SandboxError>((res) => ch2.once('broken', res));
      const lost = new Promise<SandboxError>((res) => ch2.once('lost', res));
      const head = Buffer.alloc(9);
      head.writeUInt32LE(MAX_FRAME + 1, 0);
      ch2.writeRawForTest(head);
      const e = await broken;
      assert.equal(e.code, 'guest_protocol');
      assert.match(e.message, /frame length out of bounds/);
      // Over stdio there is no second connection: the sandbox is lost, as it must be.
      assert.equal((await lost).code, 'boot_timeout');
    } finally {
      ch2.close();
      c2.kill('SIGKILL');
    }
  });

  it('treats an unknown frame type as a broken stream', async () => {
    const { child: c2, channel: ch2 } = startAgent();
    try {
      await ch2.handshake(Date.now() + 5000);
      const broken = new Promise<SandboxError>((res) => ch2.once('broken', res));
      const f = encode.ping(1, Buffer.alloc(0));
      f.writeUInt8(0x7f, 4);
      ch2.writeRawForTest(f);
      assert.match((await broken).message, /unknown frame type 0x7f/);
    } finally {
      ch2.close();
      c2.kill('SIGKILL');
    }
  });

  it('exits when its stdio channel closes (gVisor: the sandbox ends with the daemon link)', async () => {
    const { child: c2, channel: ch2 } = startAgent();
    await ch2.handshake(Date.now() + 5000);
    const exited = new Promise<number | null>((res) => c2.once('exit', res));
    c2.stdin?.end();
    assert.equal(await exited, 0);
    ch2.close();
  });
});

const fuzzRuntime = '/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a';
const canFuzz = existsSync('/usr/bin/clang') && existsSync(fuzzRuntime);

describe('guest frame decoder fuzzing (libFuzzer)', {
  skip: !canFuzz && 'clang with libFuzzer not installed (apt-get install clang libclang-rt-14-dev)',
}, () => {
  // `npm run fuzz` (scripts/fuzz.mjs) sets AIRLOCK_FUZZ_SECONDS for a longer run; the timeout follows it.
  it('survives a short fuzz run with ASan and UBSan', {
    timeout: (Number(process.env['AIRLOCK_FUZZ_SECONDS'] ?? 10) + 110) * 1000,
  }, () => {
    const src = join(guestSourceDir(), 'agent');
    const bin = join(work, 'fuzz_proto');
    const b = spawnSync(
      'clang',
      [
        '-g',
        '-O1',
        '-fsanitize=fuzzer,address,undefined',
        '-fno-sanitize-recover=undefined',
        '-o',
        bin,
        join(src, 'fuzz_proto.c'),
        join(src, 'proto.c'),
      ],
      { encoding: 'utf8' },
    );
    assert.equal(b.status, 0, b.stderr);
    // Seeds: valid frames of every host type, so the fuzzer starts deep in the decoders.
    const corpus = join(work, 'corpus');
    mkdirSync(corpus, { recursive: true });
    const seeds = [
      encode.exec(1, {
        argv: ['/bin/sh', '-c', 'echo hi'],
        env: ['A=1'],
        cwd: '/',
        timeoutMs: 5,
        outputLimit: 9,
        stdin: true,
      }),
      encode.putBegin(2, '/tmp/x', 0o644),
      encode.get(3, '/etc/hostname'),
      encode.config(5, { maxProcs: 64, rwMb: 16, timeMs: 1, entropy: Buffer.alloc(32, 7) }),
      Buffer.concat([encode.ping(4, Buffer.from('p')), encode.stdin(4, Buffer.from('data')), encode.signal(4, 9)]),
    ];
    for (const [i, s] of seeds.entries()) writeFileSync(join(corpus, `seed${i}`), s);
    const seconds = Number(process.env['AIRLOCK_FUZZ_SECONDS'] ?? 10);
    const r = spawnSync(
      bin,
      [corpus, `-max_total_time=${seconds}`, '-max_len=4096', '-seed=1', '-print_final_stats=1'],
      { encoding: 'utf8', cwd: work },
    );
    assert.equal(r.status, 0, `fuzzer found a crash:\n${r.stderr.slice(-3000)}`);
    assert.match(r.stderr, /stat::number_of_executed_units:\s*\d+/);
  });
});

after(() => rmSync(work, { recursive: true, force: true }));
