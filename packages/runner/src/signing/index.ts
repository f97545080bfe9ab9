export { generateSigningKey, publicKeyFromRaw, signRaw, verifyRaw } from './ed25519.js';
export { NonceStore } from './nonce-store.js';
export {
  DispatchVerifier,
  SIGNATURE_REFUSALS,
  type SignatureRefusal,
  type SignatureRefusalCode,
  type SigningConfig,
} from './verify.js';
