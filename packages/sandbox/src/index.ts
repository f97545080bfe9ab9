/**
 * @airlock/sandbox: the sandbox daemon — microVM backends, the guest
 * protocol, the image builder, the HTTP API and its client.
 */
export { SANDBOX_ERROR_CODES, SandboxError, type SandboxErrorCode, toSandboxError } from './errors.js';
export { airlockHome, guestSourceDir, imageCacheDir, sandboxStateDir } from './paths.js';
export { type BuildOptions, buildImages, type Progress } from './images/builder.js';
export { type ImageManifest, readManifest, verifyImages } from './images/manifest.js';
