import { isIP, connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createSecureContext, rootCertificates, TLSSocket, connect as tlsConnect } from 'node:tls';
import type { EgressCA } from './ca.js';
import type { EgressEvent } from './events.js';
import { type EgressPolicy, normalizeHost } from './policy.js';
import { blockedReason } from './ranges.js';
import type { EgressResolver } from './resolver.js';
import type { SecretSet } from './secrets.js';

/** Largest request head (request line + headers) accepted from the guest. */
export const MAX_HEAD = 64 * 1024;

/** What the proxy needs to serve one sandbox's streams. */
export interface ProxyContext {
  readonly sandbox: string;
  readonly policy: EgressPolicy;
  readonly resolver: EgressResolver;
  readonly secrets: SecretSet;
  /** The sandbox's CA; required when it has secrets (their CONNECTs are intercepted). */
  readonly ca: EgressCA | undefined;
  /** Extra CA certificates (PEM) trusted for upstream TLS, besides the system's. */
  readonly upstreamCa: readonly string[];
  readonly log: (e: EgressEvent) => void;
  readonly connectTimeoutMs?: number;
  /** A tunnel or request with no traffic either way this long is closed. */
  readonly idleTimeoutMs?: number;
}

interface Head {
  readonly method: string;
  readonly target: string;
  readonly version: string;
  readonly headers: [string, string][];
}

/** How long a connection may take to send its request head. */
export const HEAD_TIMEOUT_MS = 30_000;

/** Read up to the end of a request head; leftover bytes are put back on the stream. */
function readHead(s: Duplex): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    // A connection that never sends its request must not hold a stream (of 64) forever.
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no complete request head within ${HEAD_TIMEOUT_MS} ms`));
    }, HEAD_TIMEOUT_MS);
    timer.unref();
    const cleanup = () => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('end', onEnd);
      s.off('close', onEnd);
      s.off('error', onError);
    };
    const onData = (c: Buffer) => {
      buf = buf.length === 0 ? c : Buffer.concat([buf, c]);
      const i = buf.indexOf('\r\n\r\n');
      if (i >= 0) {
        cleanup();
        s.pause();
        const rest = buf.subarray(i + 4);
        if (rest.length > 0) s.unshift(rest);
        resolve(buf.subarray(0, i + 4));
      } else if (buf.length > MAX_HEAD) {
        cleanup();
        reject(new Error(`request head exceeds ${MAX_HEAD} bytes`));
      }
    };
    const onEnd = () => {
      cleanup();
      resolve(undefined);
    };
    const onError = (e: Error) => {
      cleanup();
      reject(e);
    };
    s.on('data', onData);
    s.on('end', onEnd);
    s.on('close', onEnd);
    s.on('error', onError);
  });
}

function parseHead(raw: Buffer): Head {
  const text = raw.toString('latin1');
  const lines = text.slice(0, -4).split('\r\n');
  const m = /^([A-Z]{1,16}) (\S{1,8192}) (HTTP\/1\.[01])$/.exec(lines[0] ?? '');
  if (!m) throw new Error('malformed request line');
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const c = line.indexOf(':');
    if (c <= 0 || /[\s]/.test(line.slice(0, c))) throw new Error('malformed header line');
    headers.push([line.slice(0, c), line.slice(c + 1).trim()]);
  }
  return { method: m[1] ?? '', target: m[2] ?? '', version: m[3] ?? '', headers };
}

/** `host:port` of a CONNECT (IPv6 in brackets). */
function splitAuthority(a: string, defaultPort?: number): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:/[\]]+)(?::(\d{1,5}))?$/.exec(a);
  if (!m) throw new Error(`malformed authority "${a.slice(0, 200)}"`);
  const port = m[2] !== undefined ? Number(m[2]) : defaultPort;
  if (port === undefined || port < 1 || port > 65535) throw new Error('the target needs a port (1..65535)');
  return { host: normalizeHost(m[1] ?? ''), port };
}

/**
 * Answer the guest and close its stream once the answer is flushed. Closing (not just
 * ending our side) matters: readHead paused the reading side, so a stream only ended would
 * wait for a guest that never needs to close, holding one of its 64 streams for good.
 */
function reply(client: Duplex, status: string, reason: string): void {
  const body = `airlock egress: ${reason}\n`;
  client.end(
    `HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    () => client.destroy(),
  );
  // A guest that stops reading cannot hold the stream either.
  setTimeout(() => client.destroy(), HEAD_TIMEOUT_MS).unref();
}

type Decision = { ok: true; address: string; addresses: string[] } | { ok: false; reason: string; addresses: string[] };

/** Allowlist, then resolution on the host, then every address against the refused ranges. */
async function decide(ctx: ProxyContext, host: string, port: number): Promise<Decision> {
  if (!ctx.policy.allows(host, port))
    return { ok: false, reason: `${host}:${port} is not on the allowlist`, addresses: [] };
  let addresses: string[];
  try {
    addresses = await ctx.resolver.resolve(host);
  } catch (e) {
    return { ok: false, reason: (e as Error).message, addresses: [] };
  }
  for (const a of addresses) {
    const why = blockedReason(a);
    // One refused address refuses the name: a rebinding answer may mix a public and an internal one.
    if (why) return { ok: false, reason: `${host} resolves to ${a}: ${why}`, addresses };
  }
  const address = addresses[0];
  if (address === undefined) return { ok: false, reason: 'name has no addresses', addresses };
  return { ok: true, address, addresses };
}

/** Connect to the vetted address itself (an IP literal: nothing is resolved again). */
function dial(address: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: address, port, family: isIP(address) });
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`connect timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

function upstreamTls(sock: Socket, host: string, ctx: ProxyContext): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const t = tlsConnect({
      socket: sock,
      ...(isIP(host) ? {} : { servername: host }),
      host,
      ca: [...rootCertificates, ...ctx.upstreamCa],
      ALPNProtocols: ['http/1.1'],
    });
    t.once('secureConnect', () => resolve(t));
    t.once('error', (e) => reject(new Error(`upstream TLS: ${e.message}`)));
  });
}

function serverTls(client: Duplex, cert: { cert: string; key: string }): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const t = new TLSSocket(client, {
      isServer: true,
      secureContext: createSecureContext({ cert: cert.cert, key: cert.key }),
      ALPNProtocols: ['http/1.1'],
    });
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      t.destroy();
      reject(new Error(`guest-side TLS: ${why}`));
    };
    const timer = setTimeout(() => fail(`no handshake within ${HEAD_TIMEOUT_MS} ms`), HEAD_TIMEOUT_MS);
    timer.unref();
    // The guest hung up before (or during) the handshake: a TLS socket over a stream does not
    // always hear of it, so the stream itself is watched too.
    const gone = () => fail('the guest closed the connection before the handshake');
    client.once('end', gone);
    client.once('close', gone);
    t.once('close', gone);
    t.once('error', (e) => fail(e.message));
    t.once('secure', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.off('end', gone);
      client.off('close', gone);
      t.off('close', gone);
      resolve(t);
    });
  });
}

/**
 * Why a request may not go out on a connection to `host:port`: it names another origin in
 * an absolute-form target or in its Host header (a server hosting several names — a CDN, a
 * shared front end — would route it there, with a secret bound to `host` swapped in), or it
 * has no single Host header. Undefined when it is for this origin.
 */
function misdirected(h: Head, host: string, port: number, scheme: 'http' | 'https'): string | undefined {
  const dflt = scheme === 'https' ? 443 : 80;
  const same = (authority: string): boolean => {
    try {
      const a = splitAuthority(authority, dflt);
      return a.host === host && a.port === port;
    } catch {
      return false;
    }
  };
  const abs = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)/i.exec(h.target);
  if (abs) {
    if ((abs[1] ?? '').toLowerCase() !== scheme || !same(abs[2] ?? ''))
      return `the request is for ${abs[1]}://${abs[2]}, not for ${host}:${port} this connection goes to`;
  } else if (!h.target.startsWith('/') && !(h.method === 'OPTIONS' && h.target === '*')) {
    return 'malformed request target';
  }
  const hosts = h.headers.filter(([k]) => k.toLowerCase() === 'host');
  if (hosts.length > 1) return 'more than one Host header';
  const hv = hosts[0]?.[1];
  if (hv !== undefined && !same(hv)) return `Host: ${hv.slice(0, 200)} is not ${host}:${port} this connection goes to`;
  return undefined;
}

/**
 * Rewrite a request head for the origin server: origin-form target, proxy
 * headers dropped, `connection: close` (one request per proxied connection,
 * so every request's headers pass through here), placeholders of secrets
 * bound to `host` replaced.
 */
function originHead(
  h: Head,
  path: string,
  host: string,
  port: number,
  ctx: ProxyContext,
): { head: Buffer; used: string[] } {
  const defaultPort = port === 80 || port === 443;
  const lines = [`${h.method} ${path} ${h.version}`];
  let hasHost = false;
  for (const [k, v] of h.headers) {
    const lk = k.toLowerCase();
    if (lk === 'proxy-connection' || lk === 'proxy-authorization' || lk === 'connection' || lk === 'keep-alive')
      continue;
    if (lk === 'host') hasHost = true;
    lines.push(`${k}: ${v}`);
  }
  if (!hasHost) lines.push(`Host: ${isIP(host) === 6 ? `[${host}]` : host}${defaultPort ? '' : `:${port}`}`);
  lines.push('Connection: close');
  const { head, used } = ctx.secrets.substitute(`${lines.join('\r\n')}\r\n\r\n`, host);
  return { head: Buffer.from(head, 'latin1'), used };
}

/**
 * Copy both ways, counting bytes. A direction is done when its source ended
 * and everything was flushed into its destination ('finish'): the relay never
 * destroys a side that still holds data for the other (a guest stream waiting
 * for window credit, say). Resolves when both directions are done, or at once
 * on an error, an abrupt close or the idle timeout (then both sides are destroyed).
 */
function relay(a: Duplex, b: Duplex, idleMs: number): Promise<{ up: number; down: number; error?: string }> {
  return new Promise((resolve) => {
    let up = 0;
    let down = 0;
    let flushed = 0;
    let finished = false;
    let timer: NodeJS.Timeout | undefined;
    const done = (error?: string) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      a.destroy();
      b.destroy();
      resolve({ up, down, ...(error ? { error } : {}) });
    };
    const touch = () => {
      clearTimeout(timer);
      timer = setTimeout(() => done(`idle for ${idleMs} ms`), idleMs);
      timer.unref();
    };
    touch();
    const direction = (src: Duplex, dst: Duplex, count: (n: number) => void, name: string) => {
      let srcEnded = false;
      src.on('data', (c: Buffer) => {
        count(c.length);
        touch();
        if (dst.writableEnded) return; // the other side already closed its reading end
        if (!dst.write(c)) {
          src.pause();
          dst.once('drain', () => src.resume());
        }
      });
      src.once('end', () => {
        srcEnded = true;
        dst.end();
      });
      dst.once('finish', () => {
        if (++flushed === 2) done();
      });
      src.once('error', (e) => done(`${name}: ${e.message}`));
      // Closed without a clean end (reset, stream lost): nothing more will be delivered.
      src.once('close', () => {
        if (!srcEnded) setImmediate(() => done(`${name}: closed before the end of its data`));
      });
    };
    direction(a, b, (n) => (up += n), 'guest side');
    direction(b, a, (n) => (down += n), 'upstream');
    a.resume();
    b.resume();
  });
}

/**
 * Serve one proxy connection from the guest: `CONNECT host:port` (a blind
 * tunnel, or TLS terminated with the sandbox's CA when a secret is bound to
 * host) or one absolute-form plain HTTP request. Every attempt ends in exactly
 * one logged event.
 */
export async function handleProxyConnection(client: Duplex, ctx: ProxyContext): Promise<void> {
  const started = Date.now();
  let method = '';
  let host = '';
  let port = 0;
  let addresses: string[] = [];
  let intercepted = false;
  let secretsUsed: string[] = [];
  const log = (decision: 'allowed' | 'refused', reason: string, up = 0, down = 0) =>
    ctx.log({
      time: new Date(started).toISOString(),
      sandbox: ctx.sandbox,
      method,
      host,
      port,
      addresses,
      decision,
      reason,
      intercepted,
      secrets_used: secretsUsed,
      bytes_up: up,
      bytes_down: down,
      duration_ms: Date.now() - started,
    });
  client.on('error', () => {});
  let head: Head;
  try {
    const raw = await readHead(client);
    if (!raw) {
      client.destroy();
      return; // connected and closed without a request: nothing was attempted
    }
    head = parseHead(raw);
    method = head.method;
    if (head.method === 'CONNECT') {
      ({ host, port } = splitAuthority(head.target));
    } else {
      const m = /^http:\/\/([^/?#]+)([^#]*)/i.exec(head.target);
      if (!m) {
        throw new Error(
          head.target.startsWith('https:')
            ? 'https URLs go through CONNECT (set HTTPS_PROXY)'
            : 'plain requests must use an absolute http:// URL',
        );
      }
      ({ host, port } = splitAuthority(m[1] ?? '', 80));
    }
  } catch (e) {
    log('refused', `malformed proxy request: ${(e as Error).message}`);
    reply(client, '400 Bad Request', (e as Error).message);
    return;
  }

  if (head.method !== 'CONNECT') {
    const why = misdirected(head, host, port, 'http');
    if (why !== undefined) {
      log('refused', `misdirected request: ${why}`);
      reply(client, '421 Misdirected Request', why);
      return;
    }
  }

  const d = await decide(ctx, host, port);
  addresses = d.addresses;
  if (!d.ok) {
    log('refused', d.reason);
    reply(client, '403 Forbidden', `refused: ${d.reason}`);
    return;
  }
  let upstream: Socket;
  try {
    upstream = await dial(d.address, port, ctx.connectTimeoutMs ?? 10_000);
  } catch (e) {
    log('allowed', `upstream connect failed: ${(e as Error).message}`);
    reply(client, '502 Bad Gateway', `cannot connect to ${host}:${port}: ${(e as Error).message}`);
    return;
  }
  upstream.on('error', () => {});
  const idle = ctx.idleTimeoutMs ?? 300_000;

  if (head.method !== 'CONNECT') {
    const path = /^http:\/\/[^/?#]+([^#]*)/i.exec(head.target)?.[1] || '/';
    const o = originHead(head, path.startsWith('/') ? path : `/${path}`, host, port, ctx);
    secretsUsed = o.used;
    upstream.write(o.head);
    const r = await relay(client, upstream, idle);
    log('allowed', r.error ?? 'ok', r.up + o.head.length, r.down);
    return;
  }

  if (!ctx.secrets.hasFor(host) || !ctx.ca) {
    client.write('HTTP/1.1 200 Connection established\r\n\r\n');
    const r = await relay(client, upstream, idle);
    log('allowed', r.error ?? 'ok', r.up, r.down);
    return;
  }

  // A secret is bound to this host: terminate the guest's TLS with our CA, verify the real server.
  intercepted = true;
  let up: TLSSocket;
  let inner: TLSSocket;
  try {
    up = await upstreamTls(upstream, host, ctx);
  } catch (e) {
    upstream.destroy();
    log('allowed', (e as Error).message);
    reply(client, '502 Bad Gateway', (e as Error).message);
    return;
  }
  up.on('error', () => {});
  try {
    client.write('HTTP/1.1 200 Connection established\r\n\r\n');
    inner = await serverTls(client, await ctx.ca.leafFor(host));
    inner.on('error', () => {});
    // However the inner connection ends, the guest's stream goes with it.
    inner.once('close', () => client.destroy());
  } catch (e) {
    up.destroy();
    client.destroy();
    log('allowed', (e as Error).message);
    return;
  }
  try {
    const raw = await readHead(inner);
    if (!raw) {
      inner.destroy();
      up.destroy();
      client.destroy();
      log('allowed', 'ok');
      return;
    }
    const h = parseHead(raw);
    const why = misdirected(h, host, port, 'https');
    if (why !== undefined) {
      up.destroy();
      log('refused', `misdirected request: ${why}`);
      reply(inner, '421 Misdirected Request', why);
      return;
    }
    const path = /^https:\/\/[^/?#]+([^#]*)/i.exec(h.target)?.[1] ?? h.target;
    const o = originHead(h, path === '' ? '/' : path, host, port, ctx);
    secretsUsed = o.used;
    up.write(o.head);
    const r = await relay(inner, up, idle);
    log('allowed', r.error ?? 'ok', r.up + o.head.length, r.down);
  } catch (e) {
    inner.destroy();
    up.destroy();
    client.destroy();
    log('allowed', `intercepted request: ${(e as Error).message}`);
  }
}
