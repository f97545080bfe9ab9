import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { SandboxError } from '../errors.js';
import { type ImageManifest, readManifest, sha256File, verifyImages } from './manifest.js';

describe('image manifest checks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'manifest-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function fixture(): Promise<ImageManifest> {
    mkdirSync(join(dir, 'b', 'packs'), { recursive: true });
    const files = {
      kernel: 'b/vmlinux',
      initramfs: 'b/initramfs.cpio',
      agent: 'b/airlock-init',
      shell: 'b/packs/shell.squashfs',
    };
    for (const f of Object.values(files)) writeFileSync(join(dir, f), `content of ${f}`);
    const entry = async (p: string) => ({ path: p, sha256: await sha256File(join(dir, p)), bytes: 1 });
    const m: ImageManifest = {
      format: 1,
      recipeHash: 'x',
      builtAt: new Date(0).toISOString(),
      kernel: { ...(await entry(files.kernel)), package: 'linux-image-test', version: '1' },
      initramfs: await entry(files.initramfs),
      agent: await entry(files.agent),
      packs: {
        shell: { ...(await entry(files.shell)), run: ['/bin/sh', '-c'], debs: ['busybox-static'], description: 'test' },
      },
    };
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
    return m;
  }

  it('accepts intact images', async () => {
    const m = await fixture();
    assert.deepEqual(readManifest(dir), m);
    await verifyImages(dir, m);
  });

  it('refuses a changed image with image_corrupt, naming the file', async () => {
    const m = await fixture();
    writeFileSync(join(dir, 'b/packs/shell.squashfs'), 'tampered');
    await assert.rejects(
      verifyImages(dir, m),
      (e: SandboxError) => e.code === 'image_corrupt' && e.message.includes('shell.squashfs'),
    );
  });

  it('refuses a missing image with image_missing', async () => {
    const m = await fixture();
    rmSync(join(dir, 'b/vmlinux'));
    await assert.rejects(
      verifyImages(dir, m),
      (e: SandboxError) => e.code === 'image_missing' && e.message.includes('vmlinux'),
    );
  });

  it('treats an unreadable manifest as no build', () => {
    writeFileSync(join(dir, 'manifest.json'), '{broken');
    assert.equal(readManifest(dir), undefined);
  });
});
