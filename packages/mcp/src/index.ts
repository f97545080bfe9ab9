/**
 * @airlock/mcp — the MCP tools of airlock, shared by the `airlock mcp` stdio bridge and the
 * control plane's `/mcp` endpoint, and the REST backend the bridge uses.
 */
export {
  type ActionInfo,
  type ActionRisk,
  type AirlockBackend,
  BackendError,
  FINAL_RUN_STATUSES,
  isFinalStatus,
  type OutputLine,
  type RunInfo,
  type RunnerInfo,
  type RunRequest,
  type SandboxApi,
  type SandboxExecInfo,
  type SandboxInfo,
} from './backend.js';
export { HttpBackend, type HttpBackendOptions } from './http-backend.js';
export { registerSandboxTools } from './sandbox-tools.js';
export { type AirlockMcpOptions, createAirlockMcpServer, riskAnnotations, toolError } from './tools.js';
