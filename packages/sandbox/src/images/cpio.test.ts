import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SandboxError } from '../errors.js';
import { buildCpio } from './cpio.js';
import { bzImagePayload } from './kernel.js';

describe('initramfs cpio writer', () => {
  it('is reproducible and readable by cpio(1)', {
    skip: !existsSync('/usr/bin/cpio') && 'cpio(1) not installed',
  }, () => {
    const entries = [
      { kind: 'dir', path: 'lib' },
      { kind: 'file', path: 'init', data: Buffer.from('#!/bin/true\n'), mode: 0o755 },
      { kind: 'file', path: 'lib/odd', data: Buffer.from('x') },
      { kind: 'symlink', path: 'bin', target: 'lib' },
    ] as const;
    const a = buildCpio(entries);
    assert.deepEqual(a, buildCpio([...entries].reverse()));
    const dir = mkdtempSync(join(tmpdir(), 'cpio-'));
    try {
      writeFileSync(join(dir, 'a.cpio'), a);
      const r = spawnSync('cpio', ['-idm', '--quiet', '-F', 'a.cpio'], { cwd: dir });
      assert.equal(r.status, 0, r.stderr.toString());
      assert.equal(readFileSync(join(dir, 'init'), 'utf8'), '#!/bin/true\n');
      assert.equal(readFileSync(join(dir, 'lib/odd'), 'utf8'), 'x');
      assert.equal(readlinkSync(join(dir, 'bin')), 'lib');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ends with the TRAILER!!! record, 4-byte aligned', () => {
    const a = buildCpio([]);
    assert.ok(a.includes(Buffer.from('TRAILER!!!\0')));
    assert.equal(a.subarray(0, 6).toString(), '070701');
  });
});

describe('bzImage payload locator', () => {
  it('refuses a file without the setup header', () => {
    assert.throws(() => bzImagePayload(Buffer.alloc(4096)), SandboxError);
  });

  it('finds an LZ4 payload from setup_sects and payload_offset', () => {
    const bz = Buffer.alloc(8192);
    bz.write('HdrS', 0x202, 'latin1');
    bz.writeUInt8(3, 0x1f1);
    bz.writeUInt32LE(100, 0x248);
    bz.writeUInt32LE(16, 0x24c);
    bz.writeUInt32LE(0x184c2102, 4 * 512 + 100);
    assert.deepEqual(bzImagePayload(bz), { offset: 4 * 512 + 100, length: 16, format: 'lz4' });
  });
});
