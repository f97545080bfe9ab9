/**
 * @airlock/sandbox: the sandbox daemon — microVM backends, the guest
 * protocol, the image builder, the HTTP API and its client.
 */

export type { BackendName, BackendStatus, IsolationLevel } from './backends/types.js';
export { defaultDaemonAddress, SandboxClient } from './client.js';
export { SANDBOX_ERROR_CODES, SandboxError, type SandboxErrorCode, toSandboxError } from './errors.js';
export { createSandboxServer, listen } from './http/server.js';
export { type BuildOptions, buildImages, type Progress } from './images/builder.js';
export { type ImageManifest, readManifest, verifyImages } from './images/manifest.js';
export { type CreateRequest, type ManagerOptions, SandboxManager } from './manager.js';
export { airlockHome, guestSourceDir, imageCacheDir, sandboxStateDir } from './paths.js';
export type { ExecEvent, ExecRequest, ExecResult, SandboxLimits, SandboxState } from './sandbox.js';
