/**
 * airlock-init's protocol handling, exercised on the host in `--stdio` mode
 * (the mode the gVisor backend uses): the same event loop, framing and
 * process handling as in a VM, without booting one. Plus a short libFuzzer
 * run over the frame decoders.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { processAlive } from '../backends/process-util.js';
import { GuestStream } from '../egress/stream.js';
import type { SandboxError } from '../errors.js';
import { compileAgent } from '../images/builder.js';
import { guestSourceDir } from '../paths.js';
import { GuestChannel, type NetHandler } from './channel.js';
import { encode, MAX_FRAME, NET_MAX_STREAMS, NET_WINDOW } from './protocol.js';

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

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe('airlock-init egress streams (host, --stdio)', {
  skip: !hasMusl && 'musl-gcc not installed (apt-get install musl-tools)',
}, () => {
  let child: ChildProcess;
  let ch: GuestChannel;
  let port: number;
  /** Per test: what to do with streams the guest opens. */
  let handler: NetHandler;
  const clients: Socket[] = [];

  before(async () => {
    if (!existsSync(agentPath)) compileAgent(guestSourceDir(), agentPath);
    ({ child, channel: ch } = startAgent());
    await ch.handshake(Date.now() + 5000);
    ch.setNetHandler({
      onOpen: (id) => handler.onOpen(id),
      onData: (id, d) => handler.onData(id, d),
      onClose: (id) => handler.onClose(id),
      onAck: (id, n) => handler.onAck(id, n),
      onReset: () => handler.onReset(),
    });
    port = await freePort();
    await ch.netListen(port);
    await ch.netListen(port); // idempotent
  });

  after(() => {
    for (const c of clients) c.destroy();
    ch.close();
    child.kill('SIGKILL');
  });

  function client(): Socket {
    const c = netConnect(port, '127.0.0.1');
    c.on('error', () => {});
    clients.push(c);
    return c;
  }

  /** Streams served by GuestStream (the daemon's own class) with `serve`. */
  function withStreams(serve: (s: GuestStream) => void): Map<number, GuestStream> {
    const streams = new Map<number, GuestStream>();
    handler = {
      onOpen: (id) => {
        const s = new GuestStream(id, ch);
        streams.set(id, s);
        serve(s);
      },
      onData: (id, d) => streams.get(id)?.deliver(d),
      onClose: (id) => streams.get(id)?.remoteClosed(),
      onAck: (id, n) => streams.get(id)?.acked(n),
      onReset: () => {
        for (const s of streams.values()) s.lost();
      },
    };
    return streams;
  }

  it('relays a connection both ways, 4 MiB each way intact, with half-close', async () => {
    withStreams((s) => s.pipe(s)); // echo
    const c = client();
    const big = Buffer.alloc(4 << 20);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(i, i);
    const got: Buffer[] = [];
    c.on('data', (d) => got.push(d));
    const closed = new Promise((r) => c.once('close', r));
    c.end(big);
    await closed;
    assert.ok(Buffer.concat(got).equals(big), 'echoed bytes differ');
  });

  it('the guest never has more than NET_WINDOW bytes unacknowledged on a stream', async () => {
    let received = 0;
    let opened = 0;
    handler = {
      onOpen: () => opened++,
      onData: (_id, d) => {
        received += d.length;
      },
      onClose: () => {},
      onAck: () => {},
      onReset: () => {},
    };
    const c = client();
    c.write(Buffer.alloc(2 << 20, 1));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(opened, 1);
    assert.equal(received, NET_WINDOW, 'the guest sent past the window without acknowledgements');
    c.destroy();
  });

  it(`caps streams at ${NET_MAX_STREAMS}: further connections are closed`, async () => {
    const ids = new Set<number>();
    handler = { onOpen: (id) => ids.add(id), onData: () => {}, onClose: () => {}, onAck: () => {}, onReset: () => {} };
    // The previous test's stream is still open in the guest (never acknowledged, never closed).
    const conns = Array.from({ length: NET_MAX_STREAMS + 6 }, () => client());
    const closedEarly = conns.map(
      (c) =>
        new Promise<boolean>((r) => {
          c.once('close', () => r(true));
          setTimeout(() => r(false), 2500);
        }),
    );
    const results = await Promise.all(closedEarly);
    assert.equal(ids.size, NET_MAX_STREAMS - 1);
    assert.equal(results.filter(Boolean).length, 7, 'connections past the cap must be closed');
    for (const id of ids) ch.netClose(id);
    for (const c of conns) c.destroy();
  });

  it('a host that overruns the window only loses that stream', async () => {
    const closes: number[] = [];
    let opened = -1;
    handler = {
      onOpen: (id) => (opened = id),
      onData: () => {},
      onClose: (id) => closes.push(id),
      onAck: () => {},
      onReset: () => {},
    };
    // The previous test's streams are being freed in the guest: retry until one is accepted as a stream.
    let c = client();
    for (let i = 0; i < 20 && opened < 0; i++) {
      await waitFor(() => opened > 0 || c.destroyed, 1000).catch(() => {});
      if (opened < 0) c = client();
    }
    assert.ok(opened > 0, 'no stream opened');
    // Nobody reads on the client side. The guest holds at most NET_WINDOW bytes it could not write yet;
    // the kernel's socket buffers absorb a few MiB first, so send far past both.
    c.pause();
    const chunk = Buffer.alloc(32768, 2);
    for (let i = 0; i < (NET_WINDOW / chunk.length) * 128; i++) ch.writeRawForTest(encode.netData(opened, chunk));
    await waitFor(() => closes.includes(opened));
    // The channel is fine: an exec still runs.
    assert.equal((await run(ch, ['/bin/echo', 'alive'])).stdout, 'alive\n');
  });
});

async function waitFor(fn: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

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
      Buffer.concat([
        encode.netListen(6, 0),
        encode.netData(7, Buffer.from('GET / HTTP/1.1\r\n\r\n')),
        encode.netAck(7, 4096),
        encode.netClose(7),
      ]),
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
