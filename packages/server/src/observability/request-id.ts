import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** What an incoming `x-request-id` may look like to be adopted (a UUID, a trace id, …). */
const ACCEPTED = /^[A-Za-z0-9._:-]{8,128}$/;

/**
 * The request id for the logs: the caller's `x-request-id` when it is a sane token (so a
 * proxy's or client's id joins up across systems), else a fresh UUID. An arbitrary header
 * value is not adopted: it would let a client put any text into every log line.
 */
export function requestIdFor(req: IncomingMessage): string {
  const h = req.headers['x-request-id'];
  return typeof h === 'string' && ACCEPTED.test(h) ? h : randomUUID();
}
