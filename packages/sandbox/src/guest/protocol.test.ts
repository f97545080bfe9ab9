import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { guestSourceDir } from '../paths.js';
import * as P from './protocol.js';

/** #define NAME VALUE pairs from guest/agent/proto.h. */
function headerDefines(): Map<string, number> {
  const text = readFileSync(join(guestSourceDir(), 'agent', 'proto.h'), 'utf8');
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^#define (AL_\w+) (0x[0-9a-f]+|\d+)/gim)) out.set(m[1] ?? '', Number(m[2]));
  return out;
}

describe('guest protocol', () => {
  it('pins every constant against guest/agent/proto.h (one source of truth)', () => {
    const h = headerDefines();
    const pairs: [string, number][] = [
      ['AL_PROTOCOL_VERSION', P.PROTOCOL_VERSION],
      ['AL_HEADER_SIZE', P.HEADER_SIZE],
      ['AL_MIN_FRAME', P.MIN_FRAME],
      ['AL_MAX_FRAME', P.MAX_FRAME],
      ['AL_MAX_PAYLOAD', P.MAX_PAYLOAD],
      ['AL_MAX_ARGS', P.MAX_ARGS],
      ['AL_MAX_ENV', P.MAX_ENV],
      ['AL_MAX_PATH', P.MAX_PATH],
      ['AL_CHUNK', P.CHUNK],
      ['AL_MAX_ENTROPY', P.MAX_ENTROPY],
      ['AL_NET_WINDOW', P.NET_WINDOW],
      ['AL_NET_MAX_STREAMS', P.NET_MAX_STREAMS],
      ['AL_NET_PROXY_PORT', P.NET_PROXY_PORT],
      ['AL_EXEC_STDIN', P.EXEC_STDIN],
      ['AL_EXIT_TIMED_OUT', P.EXIT_TIMED_OUT],
      ['AL_EXIT_TRUNCATED', P.EXIT_TRUNCATED],
      ...Object.entries(P.T).map(([k, v]): [string, number] => [`AL_T_${k}`, v]),
      ...Object.entries(P.GUEST_ERROR).map(([k, v]): [string, number] => [`AL_E_${k}`, v]),
    ];
    for (const [name, value] of pairs)
      assert.equal(h.get(name), value, `${name} differs between proto.h and protocol.ts`);
    const tsNames = new Set(pairs.map(([n]) => n));
    for (const name of h.keys()) assert.ok(tsNames.has(name), `${name} is in proto.h but not pinned in protocol.ts`);
  });

  it('encodes an exec frame with its header and counted strings', () => {
    const f = P.encode.exec(7, {
      argv: ['python3', '-c', 'print(1)'],
      env: ['A=b'],
      cwd: '/root',
      timeoutMs: 1000,
      outputLimit: 10,
      stdin: true,
    });
    assert.equal(f.readUInt32LE(0), f.length - 4);
    assert.equal(f.readUInt8(4), P.T.EXEC);
    assert.equal(f.readUInt32LE(5), 7);
    assert.equal(f.readUInt32LE(9), 1000);
    assert.equal(f.readUInt8(17), P.EXEC_STDIN);
    assert.equal(f.readUInt16LE(18), 3);
    assert.equal(f.readUInt16LE(20), 1);
  });

  it('refuses NUL bytes in strings sent to the guest', () => {
    assert.throws(() => P.encode.get(1, '/etc/passwd\0x'), P.ProtocolViolation);
  });

  it('splits frames that arrive a byte at a time', () => {
    const s = new P.FrameSplitter();
    const bytes = Buffer.concat([P.encode.ping(1, Buffer.from('a')), P.encode.ping(2, Buffer.from('bc'))]);
    const got: number[] = [];
    for (const b of bytes) for (const f of s.push(Buffer.from([b]))) got.push(f.id);
    assert.deepEqual(got, [1, 2]);
    assert.equal(s.pending, 0);
  });

  it('rejects a frame header whose length is out of bounds before buffering it', () => {
    const s = new P.FrameSplitter();
    const head = Buffer.alloc(4);
    head.writeUInt32LE(P.MAX_FRAME + 1, 0);
    assert.throws(() => s.push(head), P.ProtocolViolation);
    head.writeUInt32LE(4, 0);
    assert.throws(() => new P.FrameSplitter().push(head), P.ProtocolViolation);
  });

  it('decodes guest frames and refuses bad payload sizes and unknown types', () => {
    const exit = Buffer.alloc(13);
    exit.writeInt32LE(-1, 0);
    exit.writeUInt32LE(9, 4);
    exit.writeUInt8(P.EXIT_TIMED_OUT, 8);
    exit.writeUInt32LE(42, 9);
    assert.deepEqual(P.decodeGuestFrame(P.T.EXIT, 3, exit), {
      kind: 'exit',
      id: 3,
      exitCode: -1,
      signal: 9,
      timedOut: true,
      truncated: false,
      durationMs: 42,
    });
    assert.throws(() => P.decodeGuestFrame(P.T.EXIT, 3, Buffer.alloc(12)), P.ProtocolViolation);
    assert.throws(() => P.decodeGuestFrame(P.T.STDOUT, 3, Buffer.alloc(P.CHUNK + 1)), P.ProtocolViolation);
    assert.throws(
      () => P.decodeGuestFrame(0x03, 3, Buffer.alloc(0)),
      P.ProtocolViolation,
      'host types are not valid from the guest',
    );
    const err = Buffer.alloc(6 + 3);
    err.writeUInt16LE(2, 0);
    err.writeUInt32LE(99, 2); // claims more message than the frame holds
    assert.throws(() => P.decodeGuestFrame(P.T.ERROR, 0, err), P.ProtocolViolation);
  });

  it('decodes egress stream frames within their bounds', () => {
    assert.deepEqual(P.decodeGuestFrame(P.T.NET_OPEN, 5, Buffer.alloc(0)), { kind: 'net_open', id: 5 });
    assert.deepEqual(P.decodeGuestFrame(P.T.NET_CLOSE_G, 5, Buffer.alloc(0)), { kind: 'net_close', id: 5 });
    const ack = Buffer.alloc(4);
    ack.writeUInt32LE(P.NET_WINDOW, 0);
    assert.deepEqual(P.decodeGuestFrame(P.T.NET_ACK_G, 5, ack), { kind: 'net_ack', id: 5, bytes: P.NET_WINDOW });
    assert.equal(P.decodeGuestFrame(P.T.NET_DATA_G, 5, Buffer.alloc(P.CHUNK)).kind, 'net_data');
    for (const [type, payload] of [
      [P.T.NET_OPEN, Buffer.alloc(1)],
      [P.T.NET_CLOSE_G, Buffer.alloc(4)],
      [P.T.NET_DATA_G, Buffer.alloc(0)],
      [P.T.NET_DATA_G, Buffer.alloc(P.CHUNK + 1)],
      [P.T.NET_ACK_G, Buffer.alloc(3)],
      [P.T.NET_ACK_G, Buffer.alloc(4)], // zero bytes acknowledged
      [P.T.NET_ACK_G, Buffer.from([1, 0, 4, 0])], // past the window
      [P.T.NET_DATA_H, Buffer.alloc(1)], // a host type from the guest
    ] as const)
      assert.throws(() => P.decodeGuestFrame(type, 5, payload), P.ProtocolViolation, `type 0x${type.toString(16)}`);
    assert.throws(() => P.encode.netData(1, Buffer.alloc(P.CHUNK + 1)), P.ProtocolViolation);
    const l = P.encode.netListen(9, 3128);
    assert.equal(l.readUInt8(4), P.T.NET_LISTEN);
    assert.equal(l.readUInt16LE(9), 3128);
  });

  it('fuzz: random guest frames either decode within bounds or throw ProtocolViolation', () => {
    // A small deterministic generator: the run is reproducible.
    let x = 0x2545f491;
    const rnd = (n: number) => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % n;
    };
    const s = new P.FrameSplitter();
    for (let i = 0; i < 20_000; i++) {
      const type = rnd(3) === 0 ? rnd(256) : 0x80 + rnd(16);
      const len = [0, 1, 3, 4, 5, 12, 13, 68, 69, P.CHUNK, P.CHUNK + 1][rnd(11)] ?? 0;
      const payload = Buffer.alloc(len);
      for (let j = 0; j < Math.min(len, 16); j++) payload[j] = rnd(256);
      try {
        const f = P.decodeGuestFrame(type, rnd(1000), payload);
        if ('data' in f) assert.ok(f.data.length <= P.CHUNK);
        if (f.kind === 'net_ack') assert.ok(f.bytes > 0 && f.bytes <= P.NET_WINDOW);
      } catch (e) {
        assert.ok(e instanceof P.ProtocolViolation, String(e));
      }
      // The same bytes as a stream: the splitter never buffers past one frame's bound.
      const head = Buffer.alloc(4);
      head.writeUInt32LE(rnd(3) === 0 ? rnd(0xffffffff) : 5 + len, 0);
      try {
        s.push(Buffer.concat([head, Buffer.from([type, 0, 0, 0, 0]), payload]));
      } catch (e) {
        assert.ok(e instanceof P.ProtocolViolation);
        break;
      }
      assert.ok(s.pending <= P.HEADER_SIZE + P.MAX_FRAME);
    }
  });
});
