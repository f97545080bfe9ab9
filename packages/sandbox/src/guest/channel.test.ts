/**
 * The host side of the guest channel against a scripted fake guest on a Unix
 * socket: malformed, oversized and half-sent frames from the guest must fail
 * the request in flight with a typed error, reset the connection, and leave
 * the channel working after it reconnects.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectUnix } from '../backends/process-util.js';
import type { SandboxError } from '../errors.js';
import { GuestChannel } from './channel.js';
import { FrameSplitter, T } from './protocol.js';

type Misbehaviour = (sock: Socket, id: number) => void;

function frame(type: number, id: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(9 + payload.length);
  b.writeUInt32LE(5 + payload.length, 0);
  b.writeUInt8(type, 4);
  b.writeUInt32LE(id, 5);
  payload.copy(b, 9);
  return b;
}

describe('guest channel against a misbehaving guest', () => {
  const dir = mkdtempSync(join(tmpdir(), 'chan-'));
  const path = join(dir, 'ctl.sock');
  let server: Server;
  /** What the fake guest does with the next PING; then it behaves again. */
  let next: Misbehaviour | undefined;
  let connections = 0;

  before(async () => {
    server = createServer((sock) => {
      connections++;
      const split = new FrameSplitter();
      sock.on('error', () => {});
      sock.on('data', (d: Buffer) => {
        for (const f of split.push(d)) {
          if (f.type === T.HELLO) {
            const v = Buffer.alloc(4);
            v.writeUInt32LE(1, 0);
            sock.write(frame(T.READY, 0, Buffer.concat([v, f.payload])));
          } else if (f.type === T.PING) {
            const m = next;
            next = undefined;
            if (m) m(sock, f.id);
            else sock.write(frame(T.PONG, f.id, f.payload));
          }
        }
      });
    });
    await new Promise<void>((r) => server.listen(path, r));
  });

  after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function check(m: Misbehaviour, code: string, message: RegExp): Promise<void> {
    const ch = new GuestChannel(() => connectUnix(path));
    try {
      await ch.handshake(Date.now() + 5000);
      const before = connections;
      next = m;
      await assert.rejects(ch.ping(3000), (e: SandboxError) => e.code === code && message.test(e.message));
      await ch.settled();
      assert.equal(ch.resets, 1);
      assert.equal(connections, before + 1, 'the channel reconnected');
      assert.ok((await ch.ping(3000)) >= 0, 'and works again');
    } finally {
      ch.close();
    }
  }

  it('oversized frame length: guest_protocol, reset, recovered', () =>
    check(
      (s) => {
        const b = Buffer.alloc(4);
        b.writeUInt32LE(0x7fffffff, 0);
        s.write(b);
      },
      'guest_protocol',
      /frame length 2147483647/,
    ));

  it('undersized frame length: guest_protocol', () =>
    check((s) => s.write(Buffer.from([1, 0, 0, 0])), 'guest_protocol', /frame length 1/));

  it('unknown frame type: guest_protocol', () =>
    check((s, id) => s.write(frame(0x99, id, Buffer.alloc(0))), 'guest_protocol', /unknown guest frame type 0x99/));

  it('oversized data chunk inside a valid frame: guest_protocol', () =>
    check(
      (s, id) => s.write(frame(T.STDOUT, id, Buffer.alloc(40_000))),
      'guest_protocol',
      /data chunk of 40000 bytes/,
    ));

  it('half-sent frame, then the guest hangs up: guest_lost, reset, recovered', () =>
    check(
      (s, id) => {
        s.write(frame(T.PONG, id, Buffer.from('airlock')).subarray(0, 6));
        setTimeout(() => s.destroy(), 50);
      },
      'guest_lost',
      /closed/,
    ));
});
