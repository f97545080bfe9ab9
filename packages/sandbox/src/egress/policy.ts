import { isIP } from 'node:net';
import { normalizeEgressHost } from '@airlock/core';

/**
 * The egress allowlist of one sandbox: `host:port` entries, where host is an
 * exact DNS name, an IP literal (IPv6 in brackets) or `*.suffix` (any name
 * strictly below suffix, not suffix itself). The port is always required:
 * "api.example.com" alone would be a guess about what the user meant.
 */
export interface AllowEntry {
  /** Lower-case name without a trailing dot, `*.suffix`, or an IP literal (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** Normalise a host name from a request or a policy: lower case, no trailing dot, no brackets. */
export const normalizeHost: (host: string) => string = normalizeEgressHost;

/** Why a host pattern is invalid, or undefined. `*.` is allowed only as the whole first label. */
export function hostPatternProblem(pattern: string): string | undefined {
  const h = normalizeHost(pattern);
  if (isIP(h)) return undefined;
  const name = h.startsWith('*.') ? h.slice(2) : h;
  if (name.length === 0 || name.length > 253) return 'must be a DNS name or an IP address';
  const labels = name.split('.');
  if (!labels.every((l) => LABEL.test(l)))
    return 'must be a DNS name (letters, digits, hyphens; "*." only as a prefix)';
  if (h.startsWith('*.') && labels.length < 2) return 'a wildcard must cover a name with at least two labels';
  return undefined;
}

/** Parse `host:port` / `[v6]:port` / `*.suffix:port`; throws Error naming the problem. */
export function parseAllowEntry(text: string): AllowEntry {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(text.trim());
  if (!m) throw new Error('must be "host:port" (IPv6 as "[addr]:port"; the port is required)');
  const host = normalizeHost(m[1] ?? '');
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new Error('port must be 1..65535');
  const problem = hostPatternProblem(host);
  if (problem) throw new Error(`host ${problem}`);
  return { host, port };
}

/** True when `pattern` (exact or `*.suffix`) covers `host` (both normalised). */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern.startsWith('*.')) {
    const suffix = pattern.slice(1); // ".example.com"
    return host.length > suffix.length && host.endsWith(suffix) && !isIP(host);
  }
  return pattern === host;
}

export class EgressPolicy {
  constructor(readonly allow: readonly AllowEntry[]) {}

  static parse(entries: readonly string[]): EgressPolicy {
    return new EgressPolicy(entries.map(parseAllowEntry));
  }

  /** Is `host:port` (as the guest asked for it) on the list? */
  allows(host: string, port: number): boolean {
    const h = normalizeHost(host);
    return this.allow.some((e) => e.port === port && hostMatches(e.host, h));
  }

  /** Whether a secret's bound host pattern is the host of some allow entry. */
  coversPattern(pattern: string): boolean {
    const p = normalizeHost(pattern);
    return this.allow.some((e) => e.host === p);
  }

  /** The entries as the API shows them. */
  describe(): string[] {
    return this.allow.map((e) => `${isIP(e.host) === 6 ? `[${e.host}]` : e.host}:${e.port}`);
  }
}
