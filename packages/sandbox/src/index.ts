/**
 * @airlock/sandbox: the sandbox daemon — microVM backends, the guest
 * protocol, the image builder, the HTTP API and its client.
 */

export { type KvmProbe, probeKvm } from './backends/qemu/kvm.js';
export type { BackendName, BackendStatus, IsolationLevel } from './backends/types.js';
export { defaultDaemonAddress, type EgressReport, SandboxClient } from './client.js';
export {
  type HostStopReason,
  imageHash,
  imagePackName,
  SandboxHostClient,
  type SandboxHostOptions,
} from './control/index.js';
export type { EgressEvent } from './egress/events.js';
export type { EgressDaemonOptions, EgressRequest } from './egress/setup.js';
export { SANDBOX_ERROR_CODES, SandboxError, type SandboxErrorCode, toSandboxError } from './errors.js';
export { createSandboxServer, listen } from './http/server.js';
export { type BuildOptions, buildImages, type Progress } from './images/builder.js';
export { type ImageManifest, readManifest, verifyImages } from './images/manifest.js';
export { type CgroupLayout, createCgroup, detectCgroups } from './jail/cgroup.js';
export { type JailPlan, type JailProperty, jailReport, planJail } from './jail/jail.js';
export { type CreateRequest, type ManagerOptions, SandboxManager } from './manager.js';
export { airlockHome, guestSourceDir, imageCacheDir, sandboxStateDir } from './paths.js';
export type { ExecEvent, ExecRequest, ExecResult, SandboxLimits, SandboxState } from './sandbox.js';
