import { z } from 'zod';
import { WIRE_MESSAGE_TYPES, WIRE_SCHEMAS, type WireMessageType } from './messages.js';

/** A JSON Schema document (draft 2020-12) as plain data. */
export type JsonSchema = Readonly<Record<string, unknown>>;

/**
 * JSON Schema of every message type, generated from the same schemas `parseMessage` uses,
 * so docs and other-language peers cannot drift from the validator.
 */
export function wireJsonSchemas(): Readonly<Record<WireMessageType, JsonSchema>> {
  const out = {} as Record<WireMessageType, JsonSchema>;
  for (const type of WIRE_MESSAGE_TYPES) {
    out[type] = z.toJSONSchema(WIRE_SCHEMAS[type], { target: 'draft-2020-12' }) as JsonSchema;
  }
  return Object.freeze(out);
}
