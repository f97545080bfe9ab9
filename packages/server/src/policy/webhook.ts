import { createHmac } from 'node:crypto';
import type { ServerContext } from '../context.js';
import { loadSettings } from './store.js';

/** The HMAC-SHA256 signature header value over `timestamp.body`. */
export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * Notify the organisation's webhook (approval asked, decided, expired). Best effort: a slow
 * or failing receiver never blocks or changes a decision; failures are logged.
 * Headers: `x-airlock-event`, `x-airlock-timestamp`, `x-airlock-signature: sha256=<hex>`
 * (HMAC-SHA256 with the shared secret over `<timestamp>.<body>`).
 */
export async function notify(
  ctx: ServerContext,
  orgId: string,
  event: string,
  payload: Record<string, unknown>,
): Promise<void> {
  const settings = await loadSettings(ctx.db, orgId);
  if (settings.webhookUrl === null) return;
  const timestamp = String(Math.floor(Date.now() / 1000));
  const body = JSON.stringify({ event, time: new Date().toISOString(), ...payload });
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-airlock-event': event,
    'x-airlock-timestamp': timestamp,
  };
  if (settings.webhookSecret !== null)
    headers['x-airlock-signature'] = webhookSignature(settings.webhookSecret, timestamp, body);
  const url = settings.webhookUrl;
  void fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(5000) })
    .then((res) => {
      if (!res.ok) ctx.log.warn({ url, status: res.status, event }, 'approval webhook answered with an error');
    })
    .catch((e: unknown) => ctx.log.warn({ url, err: (e as Error).message, event }, 'approval webhook failed'));
}
