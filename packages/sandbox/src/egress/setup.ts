import { readFileSync } from 'node:fs';
import { SandboxError } from '../errors.js';
import { NET_PROXY_PORT } from '../guest/protocol.js';
import type { Sandbox } from '../sandbox.js';
import type { EgressEvent } from './events.js';
import { EgressPolicy } from './policy.js';
import { EgressResolver } from './resolver.js';
import type { EgressSecretSpec } from './secrets.js';
import {
  type EgressDaemonConfig,
  EgressSession,
  GUEST_CA_BUNDLE,
  GUEST_CA_CERT,
  GUEST_SYSTEM_BUNDLES,
} from './session.js';

/** Egress as a create request asks for it (validated by http/schemas.ts). */
export interface EgressRequest {
  readonly allow: readonly string[];
  readonly secrets?: readonly EgressSecretSpec[] | undefined;
}

/**
 * Daemon-wide egress settings (ManagerOptions.egress). Egress is available
 * unless `enabled: false` (or `AIRLOCK_SANDBOX_EGRESS=off`); each sandbox still
 * has none unless its create request names an allowlist. Environment fallbacks:
 * `AIRLOCK_SANDBOX_DNS=ip[:port],…`, `AIRLOCK_SANDBOX_EGRESS_CA=file.pem,…`.
 */
export interface EgressDaemonOptions {
  readonly enabled?: boolean;
  /** DNS servers (`ip` or `ip:port`) egress names are resolved with; default the system resolver. */
  readonly dnsServers?: readonly string[];
  /** Extra CA certificates (PEM) trusted for upstream TLS of intercepted connections (tests, private CAs). */
  readonly upstreamCaCerts?: readonly string[];
  /** Every egress event of every sandbox (the control-plane link forwards them to the audit trail). */
  readonly onEvent?: (e: EgressEvent) => void;
}

/** The options with the environment's fallbacks applied. */
export function egressDaemonOptions(
  o: EgressDaemonOptions | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Required<Pick<EgressDaemonOptions, 'enabled'>> & EgressDaemonOptions {
  const off = /^(0|off|false|no)$/i.test(env['AIRLOCK_SANDBOX_EGRESS'] ?? '');
  const dns = (env['AIRLOCK_SANDBOX_DNS'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const caFiles = (env['AIRLOCK_SANDBOX_EGRESS_CA'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  let upstreamCaCerts = o?.upstreamCaCerts;
  if (!upstreamCaCerts && caFiles.length > 0) {
    upstreamCaCerts = caFiles.map((f) => {
      try {
        return readFileSync(f, 'utf8');
      } catch (e) {
        throw new SandboxError(
          'invalid_request',
          `AIRLOCK_SANDBOX_EGRESS_CA: cannot read ${f} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
        );
      }
    });
  }
  return {
    ...o,
    enabled: o?.enabled ?? !off,
    ...(o?.dnsServers ? {} : dns.length > 0 ? { dnsServers: dns } : {}),
    ...(upstreamCaCerts ? { upstreamCaCerts } : {}),
  };
}

/** What the sandboxes of one daemon share. */
export function egressDaemonConfig(o: EgressDaemonOptions): EgressDaemonConfig {
  return { resolver: new EgressResolver(o.dnsServers), upstreamCa: o.upstreamCaCerts ?? [] };
}

/**
 * Give a freshly booted sandbox its egress: a session on the host, the guest's
 * proxy endpoint, the CA bundle in the guest (when secrets are bound), and the
 * exec environment (proxy variables, CA bundle variables, secret placeholders).
 */
export async function enableEgress(
  sb: Sandbox,
  req: EgressRequest,
  daemon: EgressDaemonConfig,
  onEvent?: (e: EgressEvent) => void,
): Promise<EgressSession> {
  const session = await EgressSession.create(sb.id, EgressPolicy.parse(req.allow), req.secrets ?? [], daemon);
  if (onEvent) session.log.on(onEvent);
  session.attach(sb.channel);
  try {
    await sb.channel.netListen(NET_PROXY_PORT);
    const ca = session.caCertificatePem;
    if (ca) {
      let system = '';
      for (const path of GUEST_SYSTEM_BUNDLES) {
        const chunks: Buffer[] = [];
        try {
          await sb.channel.getFile(path, (c) => chunks.push(c));
          system = Buffer.concat(chunks).toString('utf8');
          break;
        } catch {
          // not in this image
        }
      }
      const put = (path: string, text: string) =>
        sb.channel.putFile(
          path,
          0o644,
          (async function* () {
            yield Buffer.from(text, 'utf8');
          })(),
        );
      await put(GUEST_CA_CERT, ca);
      await put(GUEST_CA_BUNDLE, `${system}${system && !system.endsWith('\n') ? '\n' : ''}${ca}`);
    }
  } catch (e) {
    session.close();
    throw e instanceof SandboxError ? e : new SandboxError('guest_error', `egress setup: ${(e as Error).message}`);
  }
  // The placeholders and proxy variables come first; the request's own env may add to them.
  sb.env = { ...session.guestEnv(NET_PROXY_PORT), ...sb.env };
  sb.egress = session;
  void sb.vm.exited.then(() => session.close());
  return session;
}
