import { SandboxError } from '../errors.js';
import type { JailOptions } from '../jail/jail.js';
import { FirecrackerBackend } from './firecracker/backend.js';
import { GvisorBackend } from './gvisor/backend.js';
import { QemuBackend } from './qemu/backend.js';
import type { Backend, BackendName } from './types.js';

/** What every backend may need to start. */
export interface BackendContext {
  readonly kernel: string;
  readonly initramfs: string;
  readonly imageDir: string;
  readonly accel?: 'kvm' | 'tcg';
  /** The jail launcher from the images, when they have one. */
  readonly launcher?: string;
  readonly jail?: JailOptions;
}

/** Construct a backend by name. */
export function createBackend(name: BackendName, ctx: BackendContext): Backend {
  switch (name) {
    case 'qemu':
      return new QemuBackend({
        kernel: ctx.kernel,
        initramfs: ctx.initramfs,
        ...(ctx.accel ? { accel: ctx.accel } : {}),
        ...(ctx.launcher ? { launcher: ctx.launcher } : {}),
        ...(ctx.jail ? { jail: ctx.jail } : {}),
      });
    case 'gvisor':
      return new GvisorBackend();
    case 'firecracker':
      return new FirecrackerBackend({ kernel: ctx.kernel, initramfs: ctx.initramfs });
    default:
      throw new SandboxError('backend_unavailable', `unknown backend ${String(name)}`);
  }
}
