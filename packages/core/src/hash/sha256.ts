import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';

/** A SHA-256 implementation: hex digest of bytes, or of a string's UTF-8 encoding. */
export type Sha256Hex = (data: Uint8Array | string) => string;

/** The portable one (pure JavaScript), which also runs in the dashboard's browser. */
const portable: Sha256Hex = (data) => bytesToHex(sha256(typeof data === 'string' ? utf8ToBytes(data) : data));

let current: Sha256Hex = portable;

/**
 * Use another implementation of the same function: a process edge with a native one
 * (node:crypto) installs it, since the audit chain hashes every event and the portable one
 * costs several times more CPU. Refused unless it agrees with the portable one on a few
 * inputs, so a wrong implementation can never start writing unverifiable chains.
 */
export function useSha256(impl: Sha256Hex): void {
  for (const probe of ['', 'abc', 'airlock ✓ ünïcode', '\ud800 lone', new Uint8Array([0, 1, 2, 255])]) {
    if (impl(probe) !== portable(probe)) throw new Error('useSha256: the implementation disagrees with SHA-256');
  }
  current = impl;
}

/** Hex SHA-256 of bytes, or of a string's UTF-8 encoding. */
export function sha256Hex(data: Uint8Array | string): string {
  return current(data);
}

/** `sha256:<hex>`, the digest notation used in packs, audit events and the wire protocol. */
export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${sha256Hex(data)}`;
}

/** True when `s` is a well-formed `sha256:<64 lowercase hex>` digest. */
export function isSha256Digest(s: unknown): s is string {
  return typeof s === 'string' && /^sha256:[0-9a-f]{64}$/.test(s);
}
