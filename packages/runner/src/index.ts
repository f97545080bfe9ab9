export { findBinary } from './binary.js';
export { type Catalog, type LoadedPack, loadCatalog, loadPackDir, type PackLoadFailure } from './catalog.js';
export { ControlClient, type ControlClientOptions, connectUrl, type StopReason } from './client/control-client.js';
export { DedupRing } from './client/dedup-ring.js';
export { Outbox } from './client/outbox.js';
export {
  type RunningRunner,
  redeemBootstrapKey,
  type StartRunnerOptions,
  startRunner,
} from './client/runner-process.js';
export { defaultRunnerConfig, loadRunnerConfig, parseRunnerConfig, type RunnerConfig } from './config.js';
export {
  ActionEngine,
  type ActionRequest,
  type OutputLine,
  type Principal,
  type RunOptions,
  type RunResult,
  type RunStatus,
} from './engine.js';
export { LineSplitter } from './line-splitter.js';
export { readPackFiles } from './pack-dir.js';
export { airlockHome, bundledPacksDir, DEFAULT_ACTION_PATH, defaultSecurityLogPath } from './paths.js';
export {
  KILL_GRACE_MS,
  MAX_LINE_CHARS,
  runProcess,
  type SpawnBackend,
  type SpawnPlan,
  spawnBackend,
  spawnHelper,
} from './process-runner.js';
export { SecurityLog, verifyLogFile } from './security-log.js';
export {
  DispatchVerifier,
  generateSigningKey,
  NonceStore,
  publicKeyFromRaw,
  SIGNATURE_REFUSALS,
  type SignatureRefusalCode,
  type SigningConfig,
  signRaw,
  verifyRaw,
} from './signing/index.js';
export { type RunnerState, runnerState } from './state.js';
