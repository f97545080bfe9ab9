import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { canonicalJson } from '@airlock/core';

/** The fields a checkpoint signs: the server chain head at a time, and which key signed. */
export interface CheckpointPayload {
  readonly seq: number;
  readonly hash: string;
  readonly time: string;
  readonly key_id: string;
}

/** A stored checkpoint: the payload plus the base64 Ed25519 signature over its canonical JSON. */
export interface Checkpoint extends CheckpointPayload {
  readonly signature: string;
}

/** The instance's checkpoint signing key. */
export interface SigningKey {
  readonly keyId: string;
  readonly publicKeyPem: string;
  readonly privateKey: KeyObject;
  readonly path: string;
}

/** Where the signing key lives under $AIRLOCK_HOME. */
export function signingKeyPath(home: string): string {
  return join(home, 'server', 'audit-signing-key.pem');
}

/** Raw 32-byte Ed25519 public key (from the JWK `x`). */
function rawPublicKey(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new Error('not an Ed25519 public key');
  return Buffer.from(jwk.x, 'base64url');
}

/** key_id: the first 16 hex characters of SHA-256 over the raw 32-byte public key. */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(rawPublicKey(publicKey)).digest('hex').slice(0, 16);
}

/**
 * Load the signing key, creating it (PKCS#8 PEM, mode 0600) on first start. Creation uses an
 * exclusive open, so two processes sharing a home agree on one key.
 */
export function loadOrCreateSigningKey(home: string): SigningKey {
  const path = signingKeyPath(home);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const { privateKey } = generateKeyPairSync('ed25519');
    const fresh = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    try {
      writeFileSync(path, fresh, { mode: 0o600, flag: 'wx' });
      pem = fresh;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      pem = readFileSync(path, 'utf8');
    }
  }
  chmodSync(path, 0o600);
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`${path}: not an Ed25519 private key`);
  const publicKey = createPublicKey(privateKey);
  return {
    keyId: keyIdOf(publicKey),
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    privateKey,
    path,
  };
}

/** The exact bytes a checkpoint signature covers: canonical JSON of {seq, hash, time, key_id}. */
export function checkpointMessage(p: CheckpointPayload): Buffer {
  return Buffer.from(canonicalJson({ seq: p.seq, hash: p.hash, time: p.time, key_id: p.key_id }), 'utf8');
}

export function signCheckpoint(key: SigningKey, head: { seq: number; hash: string }, time: string): Checkpoint {
  const payload: CheckpointPayload = { seq: head.seq, hash: head.hash, time, key_id: key.keyId };
  return { ...payload, signature: sign(null, checkpointMessage(payload), key.privateKey).toString('base64') };
}

/** Check a checkpoint signature with a PEM (SPKI) public key. */
export function checkpointSignatureValid(cp: Checkpoint, publicKeyPem: string): boolean {
  try {
    return verify(null, checkpointMessage(cp), createPublicKey(publicKeyPem), Buffer.from(cp.signature, 'base64'));
  } catch {
    return false;
  }
}
