import { spawn, spawnSync } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, openSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { SandboxError } from '../../errors.js';
import {
  connectUnix,
  killIfOurs,
  processAlive,
  processCmdline,
  processStartTime,
  waitForExit,
} from '../process-util.js';
import type { AdoptRecord, Backend, BackendStatus, LaunchSpec, VmHandle } from '../types.js';

/** Options for the Firecracker backend. */
export interface FirecrackerOptions {
  readonly kernel: string;
  readonly initramfs: string;
  readonly binary?: string;
}

/** The vsock port airlock-init listens on (guest/agent/airlock-init.c, VSOCK_PORT). */
export const GUEST_VSOCK_PORT = 1024;

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** One call to the Firecracker API over its Unix socket (https://github.com/firecracker-microvm/firecracker/blob/main/src/firecracker/swagger/firecracker.yaml). */
function api(socketPath: string, method: string, path: string, body: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    const text = JSON.stringify(body);
    const req = request(
      {
        socketPath,
        method,
        path,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
      },
      (res) => {
        let answer = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          answer += d;
        });
        res.on('end', () => {
          if ((res.statusCode ?? 500) < 300) resolve();
          else
            reject(
              new SandboxError(
                'boot_failed',
                `firecracker ${method} ${path}: HTTP ${res.statusCode} ${answer.slice(0, 300)}`,
              ),
            );
        });
      },
    );
    req.on('error', (e) => reject(new SandboxError('boot_failed', `firecracker API ${path}: ${e.message}`)));
    req.end(text);
  });
}

/**
 * Firecracker's host side of a vsock connection: connect to the Unix socket
 * backing the device, send `CONNECT <port>\n`, expect `OK <n>\n`; after that
 * the socket is a byte stream to the guest's listener.
 */
async function connectVsock(udsPath: string, port: number): Promise<Duplex> {
  const s = await connectUnix(udsPath);
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString('latin1');
      const nl = got.indexOf('\n');
      if (nl < 0) {
        if (got.length > 64) fail(new Error('vsock handshake: no newline'));
        return;
      }
      s.off('data', onData);
      if (!got.startsWith('OK ')) return fail(new Error(`vsock handshake refused: ${got.slice(0, nl)}`));
      const rest = Buffer.from(got.slice(nl + 1), 'latin1');
      if (rest.length > 0) s.unshift(rest);
      resolve(s);
    };
    const fail = (e: Error) => {
      s.destroy();
      reject(e);
    };
    s.on('data', onData);
    s.once('error', fail);
    s.write(`CONNECT ${port}\n`);
  });
}

/**
 * Firecracker backend, written against Firecracker's documented API: used
 * when the `firecracker` binary and a working /dev/kvm are present. The guest
 * is the same kernel, initramfs and pack image as with QEMU; the control
 * channel is vsock (airlock-init listens on port 1024 with
 * `airlock.channel=vsock`). No network interface is configured.
 * Note: Firecracker announces virtio-mmio devices on the kernel command line,
 * which needs a guest kernel built with VIRTIO_MMIO_CMDLINE_DEVICES (Debian's
 * cloud kernel is not), or a Firecracker that describes them through ACPI.
 */
export class FirecrackerBackend implements Backend {
  readonly name = 'firecracker' as const;
  private readonly binary: string | undefined;

  constructor(opts: FirecrackerOptions) {
    this.binary = opts.binary ?? findOnPath('firecracker');
  }

  async probe(): Promise<BackendStatus> {
    const base = { name: this.name, isolation: 'microvm' as const, accel: 'kvm' };
    if (!this.binary)
      return {
        ...base,
        available: false,
        kvm: false,
        reason: 'firecracker binary not on PATH (not packaged in Debian 12)',
      };
    try {
      accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    } catch {
      return {
        ...base,
        available: false,
        kvm: false,
        binary: this.binary,
        reason: 'Firecracker needs KVM and /dev/kvm is not usable here',
      };
    }
    const v = spawnSync(this.binary, ['--version'], { encoding: 'utf8' });
    return {
      ...base,
      available: v.status === 0,
      kvm: true,
      binary: this.binary,
      version: v.stdout.split('\n')[0] ?? '',
      ...(v.status === 0 ? {} : { reason: v.stderr.trim() }),
    };
  }

  async launch(spec: LaunchSpec): Promise<VmHandle> {
    if (!this.binary) throw new SandboxError('backend_unavailable', 'firecracker binary not found');
    const apiSock = join(spec.dir, 'fc.sock');
    const vsock = join(spec.dir, 'vsock.sock');
    const logPath = join(spec.dir, 'console.log');
    const log = openSync(logPath, 'a');
    const child = spawn(this.binary, ['--api-sock', apiSock, '--id', spec.id], {
      detached: true,
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid ?? -1));
      child.once('error', (e) => reject(new SandboxError('boot_failed', `cannot start firecracker: ${e.message}`)));
    });
    child.unref();
    const exited = new Promise<string>((resolve) =>
      child.once('exit', (code, sig) =>
        resolve(sig ? `firecracker killed by ${sig}` : `firecracker exited with code ${code}`),
      ),
    );
    const until = Date.now() + 5000;
    while (!existsSync(apiSock)) {
      if (Date.now() > until) throw new SandboxError('boot_failed', 'firecracker API socket did not appear');
      await new Promise((r) => setTimeout(r, 20));
    }
    const bootArgs = [
      'console=ttyS0',
      'quiet',
      'reboot=k',
      'panic=1',
      'pci=off',
      'airlock.channel=vsock',
      `airlock.rw_mb=${spec.rwMb}`,
      `airlock.id=${spec.id}`,
    ].join(' ');
    await api(apiSock, 'PUT', '/boot-source', {
      kernel_image_path: spec.kernel,
      initrd_path: spec.initramfs,
      boot_args: bootArgs,
    });
    await api(apiSock, 'PUT', '/drives/pack', {
      drive_id: 'pack',
      path_on_host: spec.packImage,
      is_root_device: false,
      is_read_only: true,
    });
    await api(apiSock, 'PUT', '/machine-config', { vcpu_count: spec.vcpus, mem_size_mib: spec.memoryMb });
    await api(apiSock, 'PUT', '/vsock', { guest_cid: 3, uds_path: vsock });
    await api(apiSock, 'PUT', '/actions', { action_type: 'InstanceStart' });
    return this.handle(
      { backend: 'firecracker', id: spec.id, pid, startTime: processStartTime(pid) ?? 0, dir: spec.dir },
      spec.dir,
      exited,
    );
  }

  async adopt(record: AdoptRecord, dir: string): Promise<VmHandle | undefined> {
    if (!processAlive(record.pid, record.startTime)) return undefined;
    if (!processCmdline(record.pid).includes(record.id)) return undefined;
    return this.handle(record, dir, waitForExit(record.pid, record.startTime));
  }

  private handle(record: AdoptRecord, dir: string, exited: Promise<string>): VmHandle {
    const logPath = join(dir, 'console.log');
    return {
      pid: record.pid,
      record,
      exited,
      connect: () => connectVsock(join(dir, 'vsock.sock'), GUEST_VSOCK_PORT),
      bootLog: async () => {
        try {
          return readFileSync(logPath, 'utf8').slice(-64 * 1024);
        } catch {
          return '';
        }
      },
      kill: async () => {
        killIfOurs(record.pid, record.startTime);
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      },
      freezeForTest: () => api(join(dir, 'fc.sock'), 'PATCH', '/vm', { state: 'Paused' }),
    };
  }
}
