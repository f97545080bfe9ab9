import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { encodeMessage, parseMessage, type WireMessage } from '@airlock/core';
import fc from 'fast-check';
import { type WebSocket, WebSocketServer } from 'ws';
import type { EgressEvent } from '../egress/events.js';
import type { ImageManifest } from '../images/manifest.js';
import type { SandboxManager } from '../manager.js';
import { egressFrame, SandboxHostClient } from './host-client.js';
import { imageHash, imagePacks } from './image-hash.js';
import { redactWhole, StreamRedactor } from './output-redactor.js';

const file = (c: string) => ({ path: c, sha256: c.repeat(64), bytes: 1 });
const manifest = {
  format: 1,
  recipeHash: 'x',
  builtAt: '2026-01-01T00:00:00Z',
  kernel: { ...file('a'), package: 'linux', version: '6' },
  initramfs: file('b'),
  agent: file('c'),
  packs: {
    python: { ...file('d'), run: ['python3', '-c'], debs: [], description: 'Python' },
    shell: { ...file('e'), run: ['/bin/sh', '-c'], debs: [], description: 'sh' },
  },
} as ImageManifest;

describe('image hashes', () => {
  it('pins the image hash rule: sha256 of the canonical {initramfs, kernel, pack} JSON', () => {
    const expected = createHash('sha256')
      .update(`{"initramfs":"${'b'.repeat(64)}","kernel":"${'a'.repeat(64)}","pack":"${'d'.repeat(64)}"}`)
      .digest('hex');
    assert.equal(imageHash(manifest, 'python'), `sha256:${expected}`);
    assert.equal(imageHash(manifest, 'node'), undefined);
  });

  it('a change to kernel, initramfs or pack is a new hash', () => {
    const base = imageHash(manifest, 'python');
    for (const part of ['kernel', 'initramfs'] as const) {
      const changed = { ...manifest, [part]: { ...manifest[part], sha256: 'f'.repeat(64) } } as ImageManifest;
      assert.notEqual(imageHash(changed, 'python'), base, part);
    }
    assert.notEqual(imageHash(manifest, 'shell'), base);
  });

  it('advertises each image as a trust-on-hash pseudo-pack with no actions', () => {
    const packs = imagePacks(manifest, '0.1.0');
    assert.deepEqual(
      packs.map((p) => [p.name, p.actions.length, p.files.map((f) => f.path)]),
      [
        ['sandbox-image:python', 0, ['initramfs', 'kernel', 'packs/python']],
        ['sandbox-image:shell', 0, ['initramfs', 'kernel', 'packs/shell']],
      ],
    );
  });
});

describe('output redaction on the host', () => {
  const secret = `ghp_${'a'.repeat(36)}`;

  it('redacts a secret split across chunks', () => {
    const r = new StreamRedactor();
    const out = r.push(`token ${secret.slice(0, 10)}`) + r.push(`${secret.slice(10)}\nnext`) + r.flush();
    assert.ok(!out.includes(secret), out);
    assert.match(out, /\nnext$/);
    assert.ok(r.hits.size > 0);
  });

  it('property: whatever the chunking, the secret never passes and plain text is unchanged', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 80 }), { maxLength: 6 }), fc.string({ maxLength: 40 }), (cuts, plain) => {
        const clean = plain.replace(/[^a-z ]/g, '');
        const text = `${clean}\nkey ${secret} end\n${clean}`;
        const r = new StreamRedactor();
        let out = '';
        let at = 0;
        for (const c of [...cuts].sort((a, b) => a - b)) {
          out += r.push(text.slice(at, Math.max(at, c)));
          at = Math.max(at, c);
        }
        out += r.push(text.slice(at)) + r.flush();
        assert.ok(!out.includes(secret));
        assert.ok(out.startsWith(`${clean}\n`));
        assert.equal(redactWhole(clean).text, clean);
      }),
      { numRuns: 200 },
    );
  });
});

describe('egress events as sandbox_egress frames', () => {
  it('always fit the wire: long or odd fields from a hostile guest request are clipped', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 2000 }),
        fc.string({ maxLength: 2000 }),
        fc.integer({ min: -10, max: 70_000 }),
        fc.array(fc.string({ maxLength: 100 }), { maxLength: 50 }),
        fc.string({ maxLength: 3000 }),
        fc.constantFrom('allowed' as const, 'refused' as const),
        (method, host, port, addresses, reason, decision) => {
          const frame = egressFrame({
            time: new Date().toISOString(),
            sandbox: 'sb_0123456789ab',
            method,
            host,
            port,
            addresses,
            decision,
            reason,
            intercepted: false,
            secrets_used: ['API_TOKEN'],
            bytes_up: 1.5,
            bytes_down: 0,
            duration_ms: 3.25,
          });
          const r = parseMessage(encodeMessage(frame));
          assert.ok(r.ok, r.ok ? '' : r.error.message);
          assert.equal(r.value.type, 'sandbox_egress');
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('egress events reach the control plane at least once', () => {
  it('an event not acknowledged is sent again after a reconnect; an acknowledged one is not', async () => {
    // A scripted control plane: welcomes every connection and records the egress frames.
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => wss.once('listening', r));
    const got: { conn: number; id: string; host: string }[] = [];
    const sockets: WebSocket[] = [];
    let conns = 0;
    wss.on('connection', (ws) => {
      const conn = ++conns;
      sockets.push(ws);
      ws.on('message', (data: Buffer) => {
        const m = parseMessage(new Uint8Array(data));
        assert.ok(m.ok, m.ok ? '' : m.error.message);
        if (m.value.type === 'hello')
          ws.send(
            encodeMessage({
              type: 'welcome',
              protocol: 1,
              runner_id: 'host-1',
              session_id: `s${conn}`,
              server_version: '0.1.0',
              heartbeat_s: 30,
            }),
          );
        if (m.value.type === 'sandbox_egress') got.push({ conn, id: m.value.id ?? '', host: m.value.event.host });
      });
    });
    const manager = {
      manifest,
      info: () => ({ limits: { max_sandboxes: 4 } }),
      list: () => [],
      status: { name: 'qemu', isolation: 'microvm', kvm: false },
    } as unknown as SandboxManager;
    const client = new SandboxHostClient({
      serverUrl: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`,
      token: 'alr_test',
      name: 'host-1',
      manager,
      backoff: { minMs: 20, maxMs: 50 },
    });
    const until = async (what: string, ok: () => boolean) => {
      const end = Date.now() + 10_000;
      while (!ok()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    const forward = (host: string) =>
      (client as unknown as { forwardEgress(e: EgressEvent): void }).forwardEgress({
        sandbox: 'sb_1',
        time: new Date().toISOString(),
        method: 'CONNECT',
        host,
        port: 443,
        addresses: [],
        decision: 'refused',
        reason: 'not in the allowlist',
        intercepted: false,
        secrets_used: [],
        bytes_up: 0,
        bytes_down: 0,
        duration_ms: 0,
      });
    try {
      client.start();
      await until('welcome', () => client.connected);
      forward('a.example');
      forward('b.example');
      await until('two events', () => got.length === 2);
      const [a, b] = got as [(typeof got)[0], (typeof got)[0]];
      assert.notEqual(a.id, b.id);
      // Only b is acknowledged; the connection then breaks with a still in doubt.
      const ack = (id: string) =>
        sockets[sockets.length - 1]!.send(encodeMessage({ type: 'sandbox_egress_ack', ids: [id] } as WireMessage));
      ack(b.id);
      await until('the ack', () => client.egressUnackedCount === 1);
      sockets[0]!.terminate();
      await until('a second connection', () => conns === 2 && client.connected);
      await until('the re-sent event', () => got.length === 3);
      assert.deepEqual(got[2], { conn: 2, id: a.id, host: 'a.example' });
      ack(a.id);
      await until('nothing left to send', () => client.egressUnackedCount === 0);
      // A third connection sends nothing again.
      sockets[1]!.terminate();
      await until('a third connection', () => conns === 3 && client.connected);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(got.length, 3);
    } finally {
      client.stop();
      for (const ws of sockets) ws.terminate();
      await new Promise((r) => wss.close(r));
    }
  });
});
