// Ed25519 with node:crypto, on raw 32-byte keys written as base64url (no padding).
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';

/** A public key object from its raw base64url form, or undefined when malformed. */
export function publicKeyFromRaw(raw: string): KeyObject | undefined {
  if (!/^[A-Za-z0-9_-]{43}$/.test(raw)) return undefined;
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw }, format: 'jwk' });
  } catch {
    return undefined;
  }
}

/** Verify a base64url Ed25519 signature; false on any malformed input. */
export function verifyRaw(publicKey: string | KeyObject, data: Uint8Array, signature: string): boolean {
  const key = typeof publicKey === 'string' ? publicKeyFromRaw(publicKey) : publicKey;
  if (key === undefined || !/^[A-Za-z0-9_-]{86}$/.test(signature)) return false;
  try {
    return verify(null, data, key, Buffer.from(signature, 'base64url'));
  } catch {
    return false;
  }
}

/** A fresh key pair: raw public key and the private key as a JWK `d` (both base64url). */
export function generateSigningKey(): { publicKey: string; privateKey: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return { publicKey: String(publicKey.export({ format: 'jwk' }).x), privateKey: String(jwk.d) };
}

/** Sign with a private key given as base64url `d` and its public `x`. */
export function signRaw(privateKey: string, publicKey: string, data: Uint8Array): string {
  const key = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: privateKey, x: publicKey }, format: 'jwk' });
  return sign(null, data, key).toString('base64url');
}
