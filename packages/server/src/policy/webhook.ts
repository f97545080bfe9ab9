import { createHmac } from 'node:crypto';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import type { ServerContext } from '../context.js';
import { loadSettings } from './store.js';

/** The HMAC-SHA256 signature header value over `timestamp.body`. */
export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

// Addresses a webhook must not reach unless the operator allows them: an organisation admin
// sets the URL, so without this the server would make requests into its own network for them
// (SSRF): loopback, private, carrier-grade NAT, link-local (cloud metadata at 169.254.169.254
// and fd00:ec2::254), multicast, reserved and unspecified ranges, and their IPv6 forms.
const FORBIDDEN: readonly [string, number, 'ipv4' | 'ipv6'][] = [
  ['0.0.0.0', 8, 'ipv4'],
  ['10.0.0.0', 8, 'ipv4'],
  ['100.64.0.0', 10, 'ipv4'],
  ['127.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'],
  ['172.16.0.0', 12, 'ipv4'],
  ['192.0.0.0', 24, 'ipv4'],
  ['192.0.2.0', 24, 'ipv4'],
  ['192.168.0.0', 16, 'ipv4'],
  ['198.18.0.0', 15, 'ipv4'],
  ['198.51.100.0', 24, 'ipv4'],
  ['203.0.113.0', 24, 'ipv4'],
  ['224.0.0.0', 4, 'ipv4'],
  ['240.0.0.0', 4, 'ipv4'],
  ['::', 128, 'ipv6'],
  ['::1', 128, 'ipv6'],
  ['64:ff9b::', 96, 'ipv6'],
  ['64:ff9b:1::', 48, 'ipv6'],
  ['100::', 64, 'ipv6'],
  ['2001:db8::', 32, 'ipv6'],
  ['2002::', 16, 'ipv6'],
  ['fc00::', 7, 'ipv6'],
  ['fe80::', 10, 'ipv6'],
  ['fec0::', 10, 'ipv6'],
  ['ff00::', 8, 'ipv6'],
];

const forbidden = new BlockList();
for (const [net, prefix, family] of FORBIDDEN) forbidden.addSubnet(net, prefix, family);

/** Parse `CIDR` or a bare address (`10.1.2.0/24`, `127.0.0.1`, `fd00::/8`); undefined when invalid. */
export function parseCidr(text: string): { net: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [net = '', p] = text.trim().split('/');
  const v = isIP(net);
  if (v === 0) return undefined;
  const max = v === 4 ? 32 : 128;
  const prefix = p === undefined ? max : Number(p);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (p !== undefined && !/^\d+$/.test(p)))
    return undefined;
  return { net, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}

/** Which addresses webhooks may reach: public ones, plus the operator's explicit allowlist. */
export class WebhookTargets {
  private readonly allowed = new BlockList();

  /** `allow`: CIDRs the operator opts in to (config `webhookAllow`, env `AIRLOCK_WEBHOOK_ALLOW`). */
  constructor(readonly allow: readonly string[] = []) {
    for (const c of allow) {
      const p = parseCidr(c);
      if (p === undefined) throw new Error(`webhook allowlist: ${JSON.stringify(c)} is not an address or CIDR`);
      this.allowed.addSubnet(p.net, p.prefix, p.family);
    }
  }

  /** Why an address may not be reached, or undefined when it may. */
  refusal(address: string): string | undefined {
    const v = isIP(address);
    if (v === 0) return `${address} is not an IP address`;
    const family = v === 4 ? 'ipv4' : 'ipv6';
    // An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is judged as the IPv4 address it carries.
    const mapped = family === 'ipv6' ? /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1] : undefined;
    if (mapped !== undefined) return this.refusal(mapped);
    if (this.allowed.check(address, family)) return undefined;
    if (forbidden.check(address, family))
      return `${address} is a loopback, private, link-local or reserved address (allow it with AIRLOCK_WEBHOOK_ALLOW)`;
    return undefined;
  }
}

/**
 * Why a webhook URL cannot work, checked when an admin saves it so the mistake is named at
 * once (delivery checks again, on the address it connects to, since names can re-resolve).
 * A name that does not resolve now is accepted: it may resolve where and when it is used.
 */
export async function webhookUrlProblem(targets: WebhookTargets, url: string): Promise<string | undefined> {
  const u = new URL(url);
  if (u.username !== '' || u.password !== '') return 'credentials in the URL are not allowed (use webhook_secret)';
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) !== 0) return targets.refusal(host);
  const addresses = await new Promise<LookupAddress[]>((resolve) =>
    dnsLookup(host, { all: true }, (err, list) => resolve(err === null ? list : [])),
  );
  const bad = addresses.map((a) => targets.refusal(a.address)).find((r) => r !== undefined);
  return bad === undefined ? undefined : `${host} resolves to ${bad}`;
}

/** The outcome of one delivery attempt; never throws. */
export type Delivery =
  | { readonly kind: 'delivered'; readonly status: number }
  | { readonly kind: 'refused'; readonly reason: string }
  | { readonly kind: 'failed'; readonly reason: string };

class Refused extends Error {}

/**
 * POST a webhook body, refusing forbidden targets. The check is made on the address the
 * socket actually connects to (a custom DNS lookup), so a name that resolves to a private
 * address, or re-resolves to one after a check (DNS rebinding), is refused too. Redirects are
 * never followed: a 3xx is a failed delivery, so a public receiver cannot bounce the request
 * inward. The response body is discarded.
 */
export function deliverWebhook(
  targets: WebhookTargets,
  url: string,
  headers: Record<string, string>,
  body: string,
  timeoutMs = 5000,
): Promise<Delivery> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return Promise.resolve({ kind: 'refused', reason: 'not a URL' });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    return Promise.resolve({ kind: 'refused', reason: `scheme ${u.protocol} is not http or https` });
  if (u.username !== '' || u.password !== '')
    return Promise.resolve({ kind: 'refused', reason: 'credentials in the URL are not allowed' });
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) !== 0) {
    const why = targets.refusal(host);
    if (why !== undefined) return Promise.resolve({ kind: 'refused', reason: why });
  }
  const lookup: LookupFunction = (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err !== null) return callback(err, '', 0);
      const list = addresses ?? [];
      const bad = list.map((a) => targets.refusal(a.address)).find((r) => r !== undefined);
      if (bad !== undefined || list.length === 0)
        return callback(new Refused(`${hostname} resolves to ${bad ?? 'no address'}`), '', 0);
      if (options.all === true) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list);
      const first = list[0]!;
      callback(null, first.address, first.family);
    });
  };
  return new Promise((resolve) => {
    const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(
      u,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        lookup,
        timeout: timeoutMs,
      },
      (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400) {
          resolve({ kind: 'failed', reason: `receiver answered ${status}; redirects are not followed` });
        } else resolve({ kind: 'delivered', status });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) =>
      resolve(e instanceof Refused ? { kind: 'refused', reason: e.message } : { kind: 'failed', reason: e.message }),
    );
    req.end(body);
  });
}

const targetsByConfig = new WeakMap<object, WebhookTargets>();

/** The webhook targets policy of a server (built once from its config). */
export function webhookTargets(ctx: ServerContext): WebhookTargets {
  let t = targetsByConfig.get(ctx.config);
  if (t === undefined) {
    t = new WebhookTargets(ctx.config.webhookAllow ?? []);
    targetsByConfig.set(ctx.config, t);
  }
  return t;
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
  void deliverWebhook(webhookTargets(ctx), url, headers, body).then((d) => {
    if (d.kind === 'refused') ctx.log.warn({ url, reason: d.reason, event }, 'approval webhook refused (SSRF guard)');
    else if (d.kind === 'failed') ctx.log.warn({ url, err: d.reason, event }, 'approval webhook failed');
    else if (d.status >= 400) ctx.log.warn({ url, status: d.status, event }, 'approval webhook answered with an error');
  });
}
