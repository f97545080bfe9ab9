// Approver signing in the browser: an Ed25519 key made by WebCrypto, its private half
// non-extractable (the browser can sign with it but never hands the bytes to script), kept
// in IndexedDB with the certificate the organisation root issued for it. The bytes signed
// are built by the same code the runner verifies with (packages/core), so there is one
// canonical form.
import { type DispatchEnvelope, dispatchBytes, type SignedApproverCert } from '../../../core/src/signing/envelope';

/** One approver key in this browser. */
export interface BrowserKey {
  readonly id: string;
  readonly publicKey: string;
  readonly createdAt: string;
  readonly keyPair: CryptoKeyPair;
  readonly cert?: SignedApproverCert;
}

const DB_NAME = 'airlock-approver';
const STORE = 'keys';

function b64url(bytes: ArrayBuffer): string {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function openDb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'id' });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB is not available'));
  });
}

async function tx<T>(mode: IDBTransactionMode, fn: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const db = await openDb();
  try {
    return await new Promise<T>((resolve, reject) => {
      const req = fn(db.transaction(STORE, mode).objectStore(STORE));
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
    });
  } finally {
    db.close();
  }
}

/** Whether this browser can make and use Ed25519 keys with WebCrypto. */
export async function webCryptoEd25519(): Promise<boolean> {
  try {
    await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    return true;
  } catch {
    return false;
  }
}

/** Keys stored in this browser for this user (newest first). */
export async function listBrowserKeys(user: string): Promise<BrowserKey[]> {
  const all = await tx<BrowserKey[]>('readonly', (s) => s.getAll() as IDBRequest<BrowserKey[]>);
  return all.filter((k) => k.id.startsWith(`${user}:`)).sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
}

/** Make a new key pair (private key non-extractable) and keep it in this browser. */
export async function createBrowserKey(user: string): Promise<BrowserKey> {
  const keyPair = (await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])) as CryptoKeyPair;
  const publicKey = b64url(await crypto.subtle.exportKey('raw', keyPair.publicKey));
  const key: BrowserKey = {
    id: `${user}:${publicKey.slice(0, 16)}`,
    publicKey,
    createdAt: new Date().toISOString(),
    keyPair,
  };
  await tx('readwrite', (s) => s.put(key));
  return key;
}

/** Attach the root-issued certificate to a stored key (its public key must match). */
export async function attachCert(key: BrowserKey, cert: SignedApproverCert): Promise<BrowserKey> {
  if (cert.cert.public_key !== key.publicKey)
    throw new Error('this certificate is for another public key than the one kept in this browser');
  const next = { ...key, cert };
  await tx('readwrite', (s) => s.put(next));
  return next;
}

export async function deleteBrowserKey(key: BrowserKey): Promise<void> {
  await tx('readwrite', (s) => s.delete(key.id));
}

/** Sign a run's dispatch envelope; returns the base64url signature the runner verifies. */
export async function signEnvelope(key: BrowserKey, envelope: DispatchEnvelope): Promise<string> {
  const sig = await crypto.subtle.sign(
    { name: 'Ed25519' },
    key.keyPair.privateKey,
    new Uint8Array(dispatchBytes(envelope)),
  );
  return b64url(sig);
}

/** Parse a pasted certificate (the JSON `airlock policy certify` prints). */
export function parseCert(text: string): SignedApproverCert {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Error('not JSON: paste the whole output of "airlock policy certify"');
  }
  const c = v as Partial<SignedApproverCert>;
  if (
    typeof c !== 'object' ||
    c === null ||
    typeof c.signature !== 'string' ||
    typeof c.cert !== 'object' ||
    c.cert === null ||
    typeof c.cert.key_id !== 'string' ||
    typeof c.cert.public_key !== 'string'
  )
    throw new Error('expected {"cert": {...}, "signature": "..."} as printed by "airlock policy certify"');
  return c as SignedApproverCert;
}

export type { DispatchEnvelope, SignedApproverCert };
