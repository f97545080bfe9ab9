// Ed25519 verification on the control plane (node:crypto), on raw base64url keys.
import { createPublicKey, verify } from 'node:crypto';

export function verifyEd25519(publicKey: string, data: Uint8Array, signature: string): boolean {
  if (!/^[A-Za-z0-9_-]{43}$/.test(publicKey) || !/^[A-Za-z0-9_-]{86}$/.test(signature)) return false;
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: publicKey }, format: 'jwk' });
    return verify(null, data, key, Buffer.from(signature, 'base64url'));
  } catch {
    return false;
  }
}
