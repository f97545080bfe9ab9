export { CANONICAL_MAX_DEPTH, canonicalJson } from './canonical-json.js';
export {
  AUDIT_EVENT_VERSION,
  AUDIT_STATUSES,
  type AuditEvent,
  type AuditEventBody,
  type AuditEventFields,
  type AuditPrincipal,
  type AuditStatus,
  appendEvent,
  auditEventShapeError,
  auditHashInput,
  type ChainHead,
  digestArgs,
  GENESIS_HASH,
  hashEvent,
} from './event.js';
export {
  type ParsedJsonl,
  parseJsonl,
  type TamperReason,
  type VerifyOptions,
  type VerifyResult,
  verifyChain,
} from './verify.js';
