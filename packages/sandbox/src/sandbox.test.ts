/**
 * Sandbox-level behaviour that must hold even when the guest misbehaves:
 * a guest that ignores the output cap cannot make the host buffer more than
 * the cap. Uses a scripted fake guest on a Unix socket, no VM.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connectUnix } from './backends/process-util.js';
import type { VmHandle } from './backends/types.js';
import { GuestChannel } from './guest/channel.js';
import { FrameSplitter, T } from './guest/protocol.js';
import { Sandbox } from './sandbox.js';

function frame(type: number, id: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(9 + payload.length);
  b.writeUInt32LE(5 + payload.length, 0);
  b.writeUInt8(type, 4);
  b.writeUInt32LE(id, 5);
  payload.copy(b, 9);
  return b;
}

describe('sandbox with a guest that ignores its output cap', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sbx-'));
  const path = join(dir, 'ctl.sock');
  let server: Server;

  before(async () => {
    server = createServer((sock) => {
      const split = new FrameSplitter();
      sock.on('error', () => {});
      sock.on('data', (d: Buffer) => {
        for (const f of split.push(d)) {
          if (f.type === T.HELLO) {
            const v = Buffer.alloc(4);
            v.writeUInt32LE(1, 0);
            sock.write(frame(T.READY, 0, Buffer.concat([v, f.payload])));
          } else if (f.type === T.EXEC) {
            const pid = Buffer.alloc(4);
            pid.writeUInt32LE(42, 0);
            sock.write(frame(T.STARTED, f.id, pid));
            // 4 × 32 KiB of output whatever the cap said.
            for (let i = 0; i < 4; i++) sock.write(frame(T.STDOUT, f.id, Buffer.alloc(32768, 0x61)));
            const exit = Buffer.alloc(13); // exit 0, no flags: the guest does not even admit truncating
            sock.write(frame(T.EXIT, f.id, exit));
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

  it('keeps only max_output_bytes and reports truncated', async () => {
    const channel = new GuestChannel(() => connectUnix(path));
    await channel.handshake(Date.now() + 5000);
    const vm = {
      pid: 0,
      record: { backend: 'qemu', id: 'sb_000000000000', pid: 0, startTime: 0 },
    } as unknown as VmHandle; // only the channel is exercised
    const limits = {
      memory_mb: 64,
      vcpus: 1,
      rw_mb: 16,
      lifetime_s: null,
      exec_timeout_ms: 1000,
      max_output_bytes: 1000,
    };
    const sb = new Sandbox('sb_000000000000', 'shell', ['/bin/sh', '-c'], limits, {}, vm, channel, {
      name: 'qemu',
      isolation: 'microvm',
      kvm: false,
    });
    sb.state = 'running';
    try {
      const r = await sb.exec({ code: 'yes' });
      assert.equal(r.stdout.length, 1000);
      assert.equal(r.truncated, true);
      const small = await sb.exec({ code: 'yes', max_output_bytes: 10 });
      assert.equal(small.stdout, 'aaaaaaaaaa');
    } finally {
      channel.close();
    }
  });
});
