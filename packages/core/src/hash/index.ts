export { type PackFile, packHash, packListing } from './pack-hash.js';
export { isSha256Digest, type Sha256Hex, sha256Digest, sha256Hex, useSha256 } from './sha256.js';
