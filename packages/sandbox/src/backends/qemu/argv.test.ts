import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LaunchSpec } from '../types.js';
import { qemuArgv } from './argv.js';

const spec: LaunchSpec = {
  id: 'sb_0123456789ab',
  dir: '/run/al/sb_0123456789ab',
  kernel: '/img/vmlinux',
  initramfs: '/img/initramfs.cpio',
  packImage: '/img/packs/python.squashfs',
  packName: 'python',
  memoryMb: 192,
  vcpus: 1,
  rwMb: 48,
};

describe('QEMU command line (security-visible: pinned)', () => {
  it('is exactly this under TCG: no NIC, no shared directory, read-only pack, own seccomp', () => {
    // biome-ignore format: flag/value pairs read best on one line each
    assert.deepEqual(qemuArgv(spec, { kind: 'tcg', tscKhz: 2096028 }), [
      '-name', 'airlock-sb_0123456789ab,process=airlock-sb_0123456789ab',
      '-M', 'microvm,pit=on',
      '-cpu', 'max',
      '-accel', 'tcg,tb-size=32',
      '-m', '192',
      '-smp', '1',
      '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
      '-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
      '-kernel', '/img/vmlinux',
      '-initrd', '/img/initramfs.cpio',
      '-append', 'console=ttyS0 quiet panic=-1 oops=panic airlock.rw_mb=48 airlock.id=sb_0123456789ab tsc_early_khz=2096028',
      '-chardev', 'ringbuf,id=con,size=65536',
      '-serial', 'chardev:con',
      '-drive', 'id=pack,file=/img/packs/python.squashfs,if=none,format=raw,readonly=on',
      '-device', 'virtio-blk-device,drive=pack',
      '-device', 'virtio-serial-device,max_ports=2',
      '-chardev', 'socket,id=ctl,path=/run/al/sb_0123456789ab/run/ctl.sock,server=on,wait=off',
      '-device', 'virtserialport,chardev=ctl,name=airlock.ctl',
      '-qmp', 'unix:/run/al/sb_0123456789ab/run/qmp.sock,server=on,wait=off',
    ]);
  });

  it('uses KVM and the host CPU model when the probe succeeded, without the TCG clock hint', () => {
    const argv = qemuArgv(spec, { kind: 'kvm' });
    assert.equal(argv[argv.indexOf('-accel') + 1], 'kvm');
    assert.equal(argv[argv.indexOf('-cpu') + 1], 'host');
    assert.doesNotMatch(argv[argv.indexOf('-append') + 1] ?? '', /tsc_early_khz/);
  });

  it('never attaches a network device, a shared filesystem or a writable host disk', () => {
    const text = qemuArgv(spec, { kind: 'tcg' }).join(' ');
    assert.doesNotMatch(text, /-netdev|-nic|virtio-net|-net |9p|virtfs|vhost-user-fs|readonly=off/);
  });

  it('boots a snapshot source with its RAM in a shared file in its run directory', () => {
    const argv = qemuArgv({ ...spec, snapshotSource: true }, { kind: 'tcg' });
    assert.equal(argv[argv.indexOf('-M') + 1], 'microvm,pit=on,memory-backend=ram');
    assert.equal(
      argv[argv.indexOf('-object') + 1],
      'memory-backend-file,id=ram,size=192M,mem-path=/run/al/sb_0123456789ab/run/ram,share=on',
    );
    assert.ok(argv.includes('-kernel'));
    assert.ok(!argv.includes('-incoming'));
  });

  it('restores with the RAM image mapped copy-on-write, no kernel, and the device state deferred', () => {
    const argv = qemuArgv({ ...spec, restoreFrom: '/s/shell.vmstate' }, { kind: 'tcg' }, '/proc/self/fd/4');
    assert.equal(argv[argv.indexOf('-M') + 1], 'microvm,pit=on,memory-backend=ram');
    // share=off: a guest write copies the page; the image (and every other clone) never sees it.
    assert.equal(
      argv[argv.indexOf('-object') + 1],
      'memory-backend-file,id=ram,size=192M,mem-path=/proc/self/fd/4,share=off',
    );
    assert.equal(argv[argv.indexOf('-incoming') + 1], 'defer');
    for (const f of ['-kernel', '-initrd', '-append']) assert.ok(!argv.includes(f), `${f} on a restore`);
    // Same devices as the source, or the saved device state would not load.
    const text = argv.join(' ');
    assert.match(text, /virtio-blk-device,drive=pack .*virtio-serial-device,max_ports=2/);
    assert.doesNotMatch(text, /-netdev|-nic|virtio-net|9p|virtfs|readonly=off/);
  });

  it('restores an older state (RAM in the stream) over the socket as before', () => {
    const argv = qemuArgv({ ...spec, restoreFrom: '/s/shell.vmstate' }, { kind: 'tcg' });
    assert.equal(argv[argv.indexOf('-incoming') + 1], 'unix:/run/al/sb_0123456789ab/run/in.sock');
    assert.ok(!argv.includes('-object'));
    assert.ok(argv.includes('-kernel'));
  });
});
