import {
  certBytes,
  certTimeProblem,
  dispatchBytes,
  MAX_ENVELOPE_VALIDITY_MS,
  type RunActionMessage,
} from '@airlock/core';
import { publicKeyFromRaw, verifyRaw } from './ed25519.js';
import type { NonceStore } from './nonce-store.js';

/** Signed-dispatch settings from the runner config. */
export interface SigningConfig {
  /** The organisation root public key (raw Ed25519, base64url). */
  readonly rootPublicKey: string;
  /** Risk tiers whose runs must carry a valid approver signature. */
  readonly requireTiers: readonly ('read' | 'change' | 'destructive')[];
}

/** Each way a signed dispatch can fail, with its own refusal code. */
export const SIGNATURE_REFUSALS = {
  signature_missing: 'the tier requires an approver signature and the request has none',
  cert_missing: 'the request carries no approver certificate',
  cert_untrusted: 'the approver certificate is not signed by the organisation root key',
  cert_invalid: 'the approver certificate is malformed or valid for more than 24 hours',
  cert_expired: 'the approver certificate is not valid now',
  signature_invalid:
    'the signature does not match the envelope (runner, action, args, limits, request id, expiry, nonce)',
  envelope_invalid: 'the envelope has no expiry or nonce, or an expiry more than 24 hours ahead',
  envelope_expired: 'the signed envelope has expired',
  nonce_replayed: 'the envelope nonce was already used',
} as const;

export type SignatureRefusalCode = keyof typeof SIGNATURE_REFUSALS;

export interface SignatureRefusal {
  readonly code: SignatureRefusalCode;
  readonly message: string;
}

/**
 * Verifies signed dispatch on the runner, on its own: a compromised control plane can send
 * any frame, but cannot produce a root-certified approver signature over the exact request.
 */
export class DispatchVerifier {
  constructor(
    private readonly config: SigningConfig,
    private readonly runnerName: string,
    private readonly nonces: NonceStore,
  ) {}

  /** Whether a run of this risk tier must be signed. Unknown actions are refused by the engine. */
  requires(risk: string | undefined): boolean {
    return risk !== undefined && (this.config.requireTiers as readonly string[]).includes(risk);
  }

  /**
   * Check a request; on success the nonce is consumed (durably) and undefined returned.
   * A request whose tier needs no signature passes untouched.
   */
  check(msg: RunActionMessage, risk: string | undefined, now = Date.now()): SignatureRefusal | undefined {
    if (!this.requires(risk)) return undefined;
    const refuse = (code: SignatureRefusalCode, detail?: string): SignatureRefusal => ({
      code,
      message: `signed dispatch: ${SIGNATURE_REFUSALS[code]}${detail === undefined ? '' : ` (${detail})`}`,
    });
    const a = msg.approval;
    if (a?.signature === undefined) return refuse('signature_missing', `${msg.action} is ${risk}`);
    if (a.cert === undefined) return refuse('cert_missing');
    const root = publicKeyFromRaw(this.config.rootPublicKey);
    if (root === undefined || !verifyRaw(root, certBytes(a.cert.cert), a.cert.signature))
      return refuse('cert_untrusted');
    const certProblem = certTimeProblem(a.cert.cert, now);
    if (certProblem !== undefined) return refuse(certProblem, `${a.cert.cert.not_before} .. ${a.cert.cert.not_after}`);
    if (a.key_id !== undefined && a.key_id !== a.cert.cert.key_id)
      return refuse('signature_invalid', 'key id differs from the certificate');
    if (a.expires_at === undefined || a.nonce === undefined) return refuse('envelope_invalid');
    const envelope = {
      v: 1 as const,
      runner: this.runnerName,
      request_id: msg.request_id,
      action: msg.action,
      pack_hash: msg.pack_hash,
      args: msg.args,
      limits: msg.limits ?? {},
      expires_at: a.expires_at,
      nonce: a.nonce,
    };
    let bytes: Uint8Array;
    try {
      bytes = dispatchBytes(envelope);
    } catch (e) {
      return refuse('signature_invalid', (e as Error).message);
    }
    if (!verifyRaw(a.cert.cert.public_key, bytes, a.signature)) return refuse('signature_invalid');
    const expires = Date.parse(a.expires_at);
    if (!(expires > now)) return refuse('envelope_expired', a.expires_at);
    if (expires - now > MAX_ENVELOPE_VALIDITY_MS) return refuse('envelope_invalid', 'expiry more than 24 hours ahead');
    if (this.nonces.has(a.nonce)) return refuse('nonce_replayed', a.nonce);
    this.nonces.add(a.nonce, expires);
    return undefined;
  }
}
