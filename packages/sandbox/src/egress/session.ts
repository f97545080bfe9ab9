import type { Duplex } from 'node:stream';
import type { GuestChannel, NetHandler } from '../guest/channel.js';
import { NET_MAX_STREAMS } from '../guest/protocol.js';
import { EgressCA } from './ca.js';
import { EgressLog } from './events.js';
import type { EgressPolicy } from './policy.js';
import { handleProxyConnection, type ProxyContext } from './proxy.js';
import type { EgressResolver } from './resolver.js';
import { type EgressSecretSpec, SecretSet } from './secrets.js';
import { GuestStream } from './stream.js';

/** Where the guest finds the CA bundle (its own CAs, if any, plus the sandbox's egress CA). */
export const GUEST_CA_BUNDLE = '/etc/airlock/egress-ca-bundle.pem';
/** Where the guest finds the sandbox's egress CA certificate alone. */
export const GUEST_CA_CERT = '/etc/airlock/egress-ca.pem';
/** Bundles a guest image may carry; the first that exists is merged into GUEST_CA_BUNDLE. */
export const GUEST_SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt'];

/**
 * New connections a sandbox may open per second (a token bucket with this burst). Past it a
 * connection is closed before anything is parsed or dialled, and the refusals are reported as
 * one event per second: a guest looping on connects can neither hammer an allowed far end
 * nor flood the event log and the control plane's audit trail (one event per attempt).
 */
export const EGRESS_CONNECTS_PER_S = 20;
export const EGRESS_CONNECT_BURST = 40;

/** The daemon-wide egress settings a session needs. */
export interface EgressDaemonConfig {
  readonly resolver: EgressResolver;
  readonly upstreamCa: readonly string[];
}

/**
 * The egress side of one sandbox: the policy, its secrets and CA, the event
 * log, and the streams the guest opens on its proxy endpoint (each served by
 * the HTTP proxy in proxy.ts). Holds the CA key in memory only; `close` drops it.
 */
export class EgressSession implements NetHandler {
  readonly log = new EgressLog();
  private readonly streams = new Map<number, GuestStream>();
  private channel: GuestChannel | undefined;
  private closed = false;
  private tokens = EGRESS_CONNECT_BURST;
  private refilledAt = Date.now();
  /** Connections closed unread (rate limit, stream cap) and not reported yet, by reason. */
  private readonly refusedOpens = new Map<string, number>();
  private refusedSince = '';
  private refusedReport: NodeJS.Timeout | undefined;

  private constructor(
    readonly sandbox: string,
    readonly policy: EgressPolicy,
    readonly secrets: SecretSet,
    private ca: EgressCA | undefined,
    private readonly daemon: EgressDaemonConfig,
  ) {}

  static async create(
    sandbox: string,
    policy: EgressPolicy,
    secrets: readonly EgressSecretSpec[],
    daemon: EgressDaemonConfig,
  ): Promise<EgressSession> {
    // Without secrets nothing is intercepted: no CA is made, and none is put in the guest.
    const ca = secrets.length > 0 ? await EgressCA.create(sandbox) : undefined;
    return new EgressSession(sandbox, policy, new SecretSet(secrets), ca, daemon);
  }

  /** The CA certificate the guest must trust, when this sandbox has secrets. */
  get caCertificatePem(): string | undefined {
    return this.ca?.certificatePem;
  }

  /**
   * Environment for every exec: the proxy variables (proxy-aware clients use
   * them), the CA bundle variables when there is a CA, and NAME=placeholder per secret.
   */
  guestEnv(port: number): Record<string, string> {
    const proxy = `http://127.0.0.1:${port}`;
    return {
      HTTP_PROXY: proxy,
      HTTPS_PROXY: proxy,
      http_proxy: proxy,
      https_proxy: proxy,
      ALL_PROXY: proxy,
      all_proxy: proxy,
      NO_PROXY: 'localhost,127.0.0.1',
      no_proxy: 'localhost,127.0.0.1',
      ...(this.ca
        ? {
            SSL_CERT_FILE: GUEST_CA_BUNDLE,
            REQUESTS_CA_BUNDLE: GUEST_CA_BUNDLE,
            NODE_EXTRA_CA_CERTS: GUEST_CA_BUNDLE,
            CURL_CA_BUNDLE: GUEST_CA_BUNDLE,
          }
        : {}),
      ...this.secrets.env(),
    };
  }

  /** Start serving the guest's streams on this channel. */
  attach(channel: GuestChannel): void {
    this.channel = channel;
    channel.setNetHandler(this);
  }

  private context(): ProxyContext {
    return {
      sandbox: this.sandbox,
      policy: this.policy,
      resolver: this.daemon.resolver,
      secrets: this.secrets,
      ca: this.ca,
      upstreamCa: this.daemon.upstreamCa,
      log: (e) => this.log.push(e),
    };
  }

  /** Serve a connection that did not come from a guest (unit tests over plain sockets). */
  serve(conn: Duplex): Promise<void> {
    return handleProxyConnection(conn, this.context());
  }

  onOpen(id: number): void {
    const ch = this.channel;
    if (!ch) return;
    // The guest caps its streams too; a guest that does not is refused here.
    if (this.closed || this.streams.has(id)) {
      ch.netClose(id);
      return;
    }
    if (this.streams.size >= NET_MAX_STREAMS) {
      ch.netClose(id);
      this.noteRefusedOpen(`more than ${NET_MAX_STREAMS} connections open at once`);
      return;
    }
    if (!this.takeToken()) {
      ch.netClose(id);
      this.noteRefusedOpen(`rate limit (more than ${EGRESS_CONNECTS_PER_S}/s, burst ${EGRESS_CONNECT_BURST})`);
      return;
    }
    const s = new GuestStream(id, ch);
    this.streams.set(id, s);
    s.once('close', () => {
      if (this.streams.get(id) === s) this.streams.delete(id);
    });
    void handleProxyConnection(s, this.context()).catch(() => s.destroy());
  }

  private takeToken(): boolean {
    const now = Date.now();
    this.tokens = Math.min(
      EGRESS_CONNECT_BURST,
      this.tokens + ((now - this.refilledAt) / 1000) * EGRESS_CONNECTS_PER_S,
    );
    this.refilledAt = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  private noteRefusedOpen(why: string): void {
    if (this.refusedOpens.size === 0) this.refusedSince = new Date().toISOString();
    this.refusedOpens.set(why, (this.refusedOpens.get(why) ?? 0) + 1);
    this.refusedReport ??= setTimeout(() => this.reportRefusedOpens(), 1000);
    this.refusedReport.unref();
  }

  /** One event a second per reason for connections closed before anything was read. */
  private reportRefusedOpens(): void {
    this.refusedReport = undefined;
    for (const [why, n] of this.refusedOpens)
      this.log.push({
        time: this.refusedSince,
        sandbox: this.sandbox,
        method: 'CONNECT',
        host: '',
        port: 0,
        addresses: [],
        decision: 'refused',
        reason: `${why}: ${n} connection attempt(s) closed unread`,
        intercepted: false,
        secrets_used: [],
        bytes_up: 0,
        bytes_down: 0,
        duration_ms: 0,
      });
    this.refusedOpens.clear();
  }

  onData(id: number, data: Buffer): void {
    this.streams.get(id)?.deliver(data);
  }

  onClose(id: number): void {
    this.streams.get(id)?.remoteClosed();
  }

  onAck(id: number, bytes: number): void {
    this.streams.get(id)?.acked(bytes);
  }

  onReset(): void {
    for (const s of [...this.streams.values()]) s.lost();
    this.streams.clear();
  }

  /** Streams open now (for tests and inspection). */
  get openStreams(): number {
    return this.streams.size;
  }

  /** The sandbox is gone: close every stream and forget the CA key. */
  close(): void {
    clearTimeout(this.refusedReport);
    this.reportRefusedOpens();
    this.closed = true;
    this.onReset();
    this.channel?.setNetHandler(undefined);
    this.ca = undefined;
  }

  /** What the API shows: the allowlist and secret names, never values. */
  describe(): Record<string, unknown> {
    return {
      allow: this.policy.describe(),
      secrets: this.secrets.describe(),
      intercepting_ca: this.ca !== undefined,
      events: this.log.list().length,
    };
  }
}
