import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** A response read whole, with the local clock around it (for clock skew). */
export interface ProbeResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
  readonly sentAt: number;
  readonly receivedAt: number;
}

/** The HTTP(S) base URL for a control-plane URL given as http(s):// or ws(s)://. */
export function httpBase(url: string): string {
  return url.replace(/^ws(s?):\/\//, 'http$1://').replace(/\/+$/, '');
}

/**
 * One GET with a deadline. node:http rather than fetch: the check must see the raw status of
 * an upgrade endpoint and the Date header exactly as sent, and fail fast on a dead address.
 */
export function probeGet(url: string, headers: Record<string, string>, timeoutMs: number): Promise<ProbeResponse> {
  return new Promise((resolve, reject) => {
    const sentAt = Date.now();
    const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(
      url,
      { method: 'GET', headers, timeout: timeoutMs },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          if (body.length < 1 << 20) body += d;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, sentAt, receivedAt: Date.now() }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Clock offset of the server against this host, in seconds, from its Date header. The header
 * has one-second resolution, so the server's clock lies in [date, date + 1 s) while the local
 * one moved from sentAt to receivedAt: the offset is the smallest value that fits both.
 */
export function clockSkewSeconds(dateHeader: string, sentAt: number, receivedAt: number): number | undefined {
  const d = Date.parse(dateHeader);
  if (Number.isNaN(d)) return undefined;
  const low = d - receivedAt; // server could be this far behind at most…
  const high = d + 1000 - sentAt; // …or this far ahead
  if (low <= 0 && high >= 0) return 0;
  return (low > 0 ? low : high) / 1000;
}
