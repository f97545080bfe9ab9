// Egress as the control plane and a sandbox host exchange it: the allowlist and secrets of a
// `sandbox_create`, and the per-connection events a host reports back (`sandbox_egress`).
// Pure: the same rules as the sandbox daemon's own validation (packages/sandbox/src/egress/
// policy.ts), restated here because core may not depend on the sandbox package. The daemon
// validates again (and refuses internal IP literals) before it boots anything.
import { z } from 'zod';

/** Most allow entries and secrets one sandbox may name (the daemon's bounds). */
export const MAX_EGRESS_ALLOW = 64;
export const MAX_EGRESS_SECRETS = 16;
/** Most hosts one secret may be bound to. */
export const MAX_EGRESS_SECRET_HOSTS = 16;

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** Lower case, no brackets around an IPv6 literal, no trailing dot. */
export function normalizeEgressHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

/** Why a host pattern (`name`, `*.suffix`, IP literal) is invalid, or undefined. */
export function egressHostProblem(pattern: string): string | undefined {
  const h = normalizeEgressHost(pattern);
  // An IPv6 literal: hex groups and colons (an embedded IPv4 tail is allowed).
  if (h.includes(':')) return /^[0-9a-f:.]{2,45}$/.test(h) ? undefined : 'is not a valid IPv6 address';
  const name = h.startsWith('*.') ? h.slice(2) : h;
  if (name.length === 0 || name.length > 253) return 'must be a DNS name or an IP address';
  const labels = name.split('.');
  if (!labels.every((l) => LABEL.test(l)))
    return 'must be a DNS name (letters, digits, hyphens; "*." only as a prefix)';
  if (h.startsWith('*.') && labels.length < 2) return 'a wildcard must cover a name with at least two labels';
  return undefined;
}

/** One allow entry split into its normalised host pattern and port, or the reason it is invalid. */
export function parseEgressAllowEntry(
  text: string,
): { ok: true; host: string; port: number } | { ok: false; reason: string } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):(\d{1,5})$/.exec(text.trim());
  if (!m) return { ok: false, reason: 'must be "host:port" (IPv6 as "[addr]:port"; the port is required)' };
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return { ok: false, reason: 'port must be 1..65535' };
  const problem = egressHostProblem(m[1] ?? '');
  if (problem) return { ok: false, reason: `host ${problem}` };
  return { ok: true, host: normalizeEgressHost(m[1] ?? ''), port };
}

/**
 * True when `pattern` (a normalised `host:port` allow entry, exact or `*.suffix`) covers
 * `entry` (another allow entry): used for an organisation's cap on what creates may ask for.
 * `*.a.com:443` covers `x.a.com:443` and `*.x.a.com:443`; an exact name covers only itself.
 */
export function egressEntryCovers(pattern: string, entry: string): boolean {
  const p = parseEgressAllowEntry(pattern);
  const e = parseEgressAllowEntry(entry);
  if (!p.ok || !e.ok || p.port !== e.port) return false;
  if (p.host === e.host) return true;
  if (!p.host.startsWith('*.')) return false;
  const suffix = p.host.slice(1); // ".a.com"
  const name = e.host.startsWith('*.') ? e.host.slice(1) : e.host;
  return name.length > suffix.length && name.endsWith(suffix) && !name.includes(':');
}

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'expected an environment variable name');

/** A secret: its value is swapped into request headers on the host, never given to the guest. */
const egressSecret = z.strictObject({
  name: envName,
  value: z
    .string()
    .min(1)
    .max(8192)
    // A CR or LF would let the value inject header lines where the host swaps it in.
    .refine((v) => !/[\0\r\n]/.test(v), 'must not contain NUL, CR or LF (it is sent in an HTTP header)')
    // OpenAPI: the value is accepted, never returned.
    .meta({ writeOnly: true }),
  hosts: z.array(z.string().min(1).max(260)).min(1).max(MAX_EGRESS_SECRET_HOSTS),
});

/** `{allow, secrets?}`: what a sandbox may reach, and the secrets bound to some of those hosts. */
export const sandboxEgressSchema = z
  .strictObject(
    {
      allow: z.array(z.string().min(1).max(300)).min(1).max(MAX_EGRESS_ALLOW),
      secrets: z.array(egressSecret).max(MAX_EGRESS_SECRETS).optional(),
    },
    {
      // `egress: true` is the likely mistake: there is no allow-all.
      error: (iss) =>
        iss.code === 'invalid_type'
          ? 'expected {"allow": ["host:port", ...], "secrets"?: [...]}: egress needs an allowlist (there is no egress: true)'
          : undefined,
    },
  )
  .superRefine((v, ctx) => {
    const hosts = new Set<string>();
    v.allow.forEach((a, i) => {
      const r = parseEgressAllowEntry(a);
      if (r.ok) hosts.add(r.host);
      else ctx.addIssue({ code: 'custom', path: ['allow', i], message: r.reason });
    });
    const names = new Set<string>();
    (v.secrets ?? []).forEach((s, i) => {
      if (names.has(s.name))
        ctx.addIssue({ code: 'custom', path: ['secrets', i, 'name'], message: `duplicate secret name ${s.name}` });
      names.add(s.name);
      s.hosts.forEach((h, j) => {
        const problem = egressHostProblem(h);
        if (problem) ctx.addIssue({ code: 'custom', path: ['secrets', i, 'hosts', j], message: `host ${problem}` });
        else if (!hosts.has(normalizeEgressHost(h)))
          ctx.addIssue({
            code: 'custom',
            path: ['secrets', i, 'hosts', j],
            message: `"${h}" is not the host of any egress.allow entry (a secret can only go where egress may)`,
          });
      });
    });
  });

/** Egress of one sandbox, as `sandbox_create` carries it. */
export interface SandboxEgressSpec {
  readonly allow: readonly string[];
  readonly secrets?:
    | readonly { readonly name: string; readonly value: string; readonly hosts: readonly string[] }[]
    | undefined;
}

/** Longest strings of an egress event (a host clips before sending; the server refuses longer). */
export const EGRESS_EVENT_BOUNDS = { method: 32, host: 300, reason: 1024, address: 64, addresses: 32 } as const;

/** One egress attempt as a host reports it (the daemon's event without its host-local sandbox id). */
export const sandboxEgressEventSchema = z.strictObject({
  time: z.iso.datetime({ offset: true }),
  method: z.string().max(EGRESS_EVENT_BOUNDS.method),
  host: z.string().max(EGRESS_EVENT_BOUNDS.host),
  port: z.int().min(0).max(65535),
  addresses: z.array(z.string().max(EGRESS_EVENT_BOUNDS.address)).max(EGRESS_EVENT_BOUNDS.addresses),
  decision: z.enum(['allowed', 'refused']),
  reason: z.string().max(EGRESS_EVENT_BOUNDS.reason),
  intercepted: z.boolean(),
  secrets_used: z.array(envName).max(MAX_EGRESS_SECRETS),
  bytes_up: z.int().min(0),
  bytes_down: z.int().min(0),
  duration_ms: z.number().min(0),
});

export interface SandboxEgressEvent {
  readonly time: string;
  readonly method: string;
  readonly host: string;
  readonly port: number;
  readonly addresses: readonly string[];
  readonly decision: 'allowed' | 'refused';
  readonly reason: string;
  readonly intercepted: boolean;
  /** Names of the secrets swapped in on this connection (never values). */
  readonly secrets_used: readonly string[];
  readonly bytes_up: number;
  readonly bytes_down: number;
  readonly duration_ms: number;
}
