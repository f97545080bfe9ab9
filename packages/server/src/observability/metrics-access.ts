import { timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';

/** Who may read /metrics. */
export interface MetricsAccess {
  /** `AIRLOCK_METRICS_TOKEN`: when set, required from every address, loopback included. */
  readonly token?: string | undefined;
}

function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return (isIP(a) === 4 && a.startsWith('127.')) || a === '::1';
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Decide a /metrics request. Metrics name no secrets but do describe activity (how many runs,
 * which capabilities, error rates), so they are not public: without a token only a direct
 * loopback caller (a local Prometheus or node exporter) may read them. A request that came
 * through a proxy (it carries X-Forwarded-For or Forwarded) is not treated as local even if
 * the proxy itself connects over loopback. With a token, the bearer token decides.
 */
export function metricsAllowed(
  access: MetricsAccess,
  remoteAddress: string | undefined,
  headers: Readonly<Record<string, string | string[] | undefined>>,
): { ok: true } | { ok: false; status: 401 | 403; message: string } {
  if (access.token !== undefined && access.token !== '') {
    const given = /^Bearer\s+(\S+)$/i.exec(String(headers['authorization'] ?? ''))?.[1];
    if (given !== undefined && sameSecret(given, access.token)) return { ok: true };
    return { ok: false, status: 401, message: 'metrics need the bearer token configured in AIRLOCK_METRICS_TOKEN' };
  }
  const proxied = headers['x-forwarded-for'] !== undefined || headers['forwarded'] !== undefined;
  if (isLoopback(remoteAddress) && !proxied) return { ok: true };
  return {
    ok: false,
    status: 403,
    message: 'metrics are served to loopback callers only; set AIRLOCK_METRICS_TOKEN to scrape from elsewhere',
  };
}
