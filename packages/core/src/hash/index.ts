export { type PackFile, packHash, packListing } from './pack-hash.js';
export { isSha256Digest, sha256Digest, sha256Hex } from './sha256.js';
