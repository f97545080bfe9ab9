export { type JsonSchema, wireJsonSchemas } from './json-schema.js';
export {
  type AcceptedMessage,
  type AckMessage,
  type CancelMessage,
  type ClampRecord,
  type ErrorMessage,
  type HelloMessage,
  MAX_FRAME_BYTES,
  MAX_FRAME_DEPTH,
  type OutputMessage,
  type PingMessage,
  type PongMessage,
  PROTOCOL_VERSION,
  type PrincipalType,
  type ResultMessage,
  type ResultStatus,
  type RunActionMessage,
  type WelcomeMessage,
  WIRE_MESSAGE_TYPES,
  type WireMessage,
  type WireMessageType,
} from './messages.js';
export { encodeMessage, type ParseMessageResult, parseMessage, type WireFrameError } from './parse.js';
