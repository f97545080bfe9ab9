export { type HostStopReason, SandboxHostClient, type SandboxHostOptions } from './host-client.js';
export { imageHash, imagePackName, imagePacks } from './image-hash.js';
