export {
  type ApproverCert,
  certBytes,
  certTimeProblem,
  type DispatchEnvelope,
  dispatchBytes,
  MAX_CERT_VALIDITY_MS,
  MAX_ENVELOPE_VALIDITY_MS,
  normaliseEnvelope,
  type SignedApproverCert,
} from './envelope.js';
