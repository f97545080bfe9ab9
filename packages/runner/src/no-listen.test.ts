// Invariant: the runner never listens on a port. Checked two ways: no server API appears in
// the runner's sources, and a process that loaded the runner and ran an action owns no
// listening socket.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir, testRunner } from './testing/fixture.js';
import { writeFixturePack } from './testing/fixture-pack.js';

const src = resolve(fileURLToPath(import.meta.url), '../../src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const full = join(dir, n);
    // Test support folders are not shipped (package.json "files") and start test servers.
    if (statSync(full).isDirectory()) return n === 'testing' || n === 'catalog-tests' ? [] : sources(full);
    return n.endsWith('.ts') && !n.endsWith('.test.ts') ? [full] : [];
  });
}

test('runner sources contain no server API', () => {
  const forbidden = /createServer|\.listen\s*\(|WebSocketServer|node:dgram|createSocket\(/;
  const hits = sources(src).filter((f) => forbidden.test(readFileSync(f, 'utf8')));
  assert.deepEqual(hits, []);
});

function listeningInodes(): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6', '/proc/net/udp', '/proc/net/udp6', '/proc/net/unix']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (table.endsWith('unix')) {
        // unix: Num RefCount Protocol Flags Type St Inode Path; flags 00010000 = __SO_ACCEPTCON (listening)
        if (f[3] === '00010000' && f[6] !== undefined) inodes.add(f[6]);
      } else if (f[3] === '0A' && f[9] !== undefined) inodes.add(f[9]);
    }
  }
  return inodes;
}

test('a process running the runner engine owns no listening socket', async () => {
  const t = tempDir();
  try {
    const allowed = join(t.dir, 'allowed');
    mkdirSync(allowed);
    const r = testRunner([writeFixturePack(join(t.dir, 'pack'), allowed)]);
    try {
      const res = await r.engine.run({
        action: 'fx.echo',
        args: { msg: 'x' },
        reason: 't',
        principal: { type: 'local', id: 't' },
      });
      assert.equal(res.status, 'success');
      const listening = listeningInodes();
      const mine: string[] = [];
      for (const fd of readdirSync('/proc/self/fd')) {
        let target = '';
        try {
          target = readlinkSync(`/proc/self/fd/${fd}`);
        } catch {
          continue;
        }
        const m = /^socket:\[(\d+)\]$/.exec(target);
        if (m?.[1] !== undefined && listening.has(m[1])) mine.push(target);
      }
      assert.deepEqual(mine, []);
    } finally {
      r.cleanup();
    }
  } finally {
    t.cleanup();
  }
});
