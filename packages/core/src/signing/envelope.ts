// Signed dispatch: the canonical bytes an approver signs and the organisation root certifies.
// Pure: no keys, no crypto here; the runner and the server sign and verify with Ed25519 at
// the edges (node:crypto), the dashboard with WebCrypto. Both sides MUST build the bytes
// with these functions, so one canonical form exists.
import { canonicalJson } from '../audit/canonical-json.js';

/** Longest validity an approver certificate may have: 24 hours. */
export const MAX_CERT_VALIDITY_MS = 24 * 60 * 60 * 1000;

/** Longest validity of one signed envelope (from signing to expiry): 24 hours. */
export const MAX_ENVELOPE_VALIDITY_MS = 24 * 60 * 60 * 1000;

const DISPATCH_CONTEXT = 'airlock-dispatch-v1\n';
const CERT_CONTEXT = 'airlock-approver-cert-v1\n';

/**
 * What an approver signs: everything that decides what the runner does. The limits are
 * inside, so nothing outside the signature can change them; the nonce makes it single use.
 */
export interface DispatchEnvelope {
  readonly v: 1;
  /** The runner's name (its configured name, the one it registered with). */
  readonly runner: string;
  readonly request_id: string;
  readonly action: string;
  readonly pack_hash: string;
  readonly args: Readonly<Record<string, unknown>>;
  readonly limits: Readonly<Record<string, number>>;
  /** ISO time after which the runner refuses to start it. */
  readonly expires_at: string;
  /** Random, single use: a runner refuses a nonce it has seen. */
  readonly nonce: string;
}

/** An approver key certified by the organisation root key for a short time (≤ 24 h). */
export interface ApproverCert {
  readonly v: 1;
  readonly key_id: string;
  /** Raw Ed25519 public key, base64url without padding (32 bytes). */
  readonly public_key: string;
  /** Who holds it (user id or name); recorded, not trusted for anything. */
  readonly subject: string;
  readonly not_before: string;
  readonly not_after: string;
}

/** A certificate with the root's signature over `certBytes(cert)` (base64url). */
export interface SignedApproverCert {
  readonly cert: ApproverCert;
  readonly signature: string;
}

/** UTF-8 bytes of the text to sign for a dispatch envelope. */
export function dispatchBytes(env: DispatchEnvelope): Uint8Array {
  return new TextEncoder().encode(DISPATCH_CONTEXT + canonicalJson(normaliseEnvelope(env)));
}

/** UTF-8 bytes of the text the root key signs for an approver certificate. */
export function certBytes(cert: ApproverCert): Uint8Array {
  return new TextEncoder().encode(
    CERT_CONTEXT +
      canonicalJson({
        v: cert.v,
        key_id: cert.key_id,
        public_key: cert.public_key,
        subject: cert.subject,
        not_before: cert.not_before,
        not_after: cert.not_after,
      }),
  );
}

/** Only the envelope's own fields, so extra properties never reach (or escape) the signature. */
export function normaliseEnvelope(env: DispatchEnvelope): DispatchEnvelope {
  return {
    v: 1,
    runner: env.runner,
    request_id: env.request_id,
    action: env.action,
    pack_hash: env.pack_hash,
    args: env.args,
    limits: env.limits,
    expires_at: env.expires_at,
    nonce: env.nonce,
  };
}

/** Why a certificate is unusable at `now`, or undefined when it is valid in time and shape. */
export function certTimeProblem(cert: ApproverCert, now: number): 'cert_invalid' | 'cert_expired' | undefined {
  const nb = Date.parse(cert.not_before);
  const na = Date.parse(cert.not_after);
  if (!Number.isFinite(nb) || !Number.isFinite(na) || na <= nb) return 'cert_invalid';
  if (na - nb > MAX_CERT_VALIDITY_MS) return 'cert_invalid';
  if (now < nb || now >= na) return 'cert_expired';
  return undefined;
}
