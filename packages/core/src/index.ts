export {
  AirlockError,
  ERROR_CODES,
  type ErrorCode,
  err,
  ok,
  type Result,
  toAirlockError,
  WireError,
} from './errors.js';
export { isSha256Digest, type PackFile, packHash, packListing, sha256Digest, sha256Hex } from './hash/index.js';
