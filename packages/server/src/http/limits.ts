import type { FastifyInstance } from 'fastify';
import { ApiError } from './api-error.js';

/**
 * Bounds on what one HTTP client can make the server hold: body size, JSON nesting, and how
 * long a connection may take to send its headers and its whole request (slow-loris).
 */
export interface HttpLimits {
  /** Largest request body (bytes); larger is 413 `payload_too_large`. */
  readonly bodyLimitBytes: number;
  /** Deepest JSON nesting of arrays and objects; deeper is 400 before parsing. */
  readonly maxJsonDepth: number;
  /** Time allowed to receive the request headers (includes WebSocket upgrade requests). */
  readonly headersTimeoutMs: number;
  /** Time allowed to receive the whole request, body included (not the response). */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long. */
  readonly keepAliveTimeoutMs: number;
  /** How often Node checks connections against the two timeouts above. */
  readonly timeoutCheckIntervalMs: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = Object.freeze({
  bodyLimitBytes: 1024 * 1024,
  maxJsonDepth: 64,
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 72_000,
  timeoutCheckIntervalMs: 5_000,
});

/**
 * True when `text` nests arrays/objects deeper than `max`. One linear pass that skips string
 * contents; it runs before `JSON.parse`, so a hostile body never reaches code that recurses
 * on depth (`JSON.stringify`, canonical JSON, zod) and overflows the stack.
 */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/**
 * Replace Fastify's JSON parser with one that refuses over-deep bodies with a field-less 400,
 * keeping Fastify's own parser (and its `__proto__`/`constructor` poisoning refusal) for the rest.
 */
export function installJsonLimits(app: FastifyInstance, limits: HttpLimits): void {
  const base = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(
    'application/json',
    { parseAs: 'string', bodyLimit: limits.bodyLimitBytes },
    (req, body, done) => {
      if (jsonDepthExceeds(body as string, limits.maxJsonDepth)) {
        done(
          ApiError.badRequest(`body: JSON nested deeper than ${limits.maxJsonDepth} levels`, [
            { field: 'body', message: `nested deeper than ${limits.maxJsonDepth} levels` },
          ]),
          undefined,
        );
        return;
      }
      base(req, body as string, done);
    },
  );
}

/** The Fastify constructor options that apply `limits` to the underlying Node HTTP server. */
export function fastifyLimitOptions(limits: HttpLimits) {
  return {
    bodyLimit: limits.bodyLimitBytes,
    // Fastify's own default (0) would switch off Node's request timeout; keep one.
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    http: {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: limits.timeoutCheckIntervalMs,
    },
  };
}
