import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ociConfig } from './backend.js';

describe('gVisor OCI config (security-visible: pinned)', () => {
  it('runs airlock-init --stdio as init in fresh namespaces, network included, with no host mounts', () => {
    const c = ociConfig('/img/rootfs/shell', {
      id: 'sb_0123456789ab',
      dir: '/run/x',
      kernel: '',
      initramfs: '',
      packImage: '/img/packs/shell.squashfs',
      packName: 'shell',
      memoryMb: 192,
      vcpus: 1,
      rwMb: 48,
    });
    assert.deepEqual(c['process'], {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ['/sbin/airlock-init', '--stdio'],
      env: ['PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin'],
      cwd: '/',
    });
    assert.deepEqual(c['linux'], {
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'network' }],
    });
    const mounts = c['mounts'] as { type: string; source: string }[];
    assert.deepEqual(
      mounts.map((m) => m.type),
      ['proc', 'tmpfs', 'tmpfs'],
      'no bind mounts of host paths',
    );
  });
});
