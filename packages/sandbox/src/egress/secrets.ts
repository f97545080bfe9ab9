import { randomBytes } from 'node:crypto';
import { hostMatches, normalizeHost } from './policy.js';

/** A secret as the create request gives it: the value never enters the guest. */
export interface EgressSecretSpec {
  readonly name: string;
  readonly value: string;
  /** Host patterns (exact or `*.suffix`, each the host of an allow entry) the value may be sent to. */
  readonly hosts: readonly string[];
}

interface Bound {
  readonly name: string;
  readonly value: string;
  readonly placeholder: string;
  readonly hosts: readonly string[];
}

/**
 * The secrets of one sandbox. The guest's environment gets NAME=<placeholder>
 * (random per sandbox); the egress proxy swaps the placeholder for the value
 * in HTTP request headers, and only on connections whose target host is one
 * the secret is bound to. Anywhere else the placeholder passes unchanged.
 */
export class SecretSet {
  private readonly bound: readonly Bound[];

  constructor(specs: readonly EgressSecretSpec[]) {
    this.bound = specs.map((s) => ({
      name: s.name,
      value: s.value,
      placeholder: `airlock-placeholder-${randomBytes(16).toString('hex')}`,
      hosts: s.hosts.map(normalizeHost),
    }));
  }

  /** NAME=placeholder for the guest's exec environment. */
  env(): Record<string, string> {
    return Object.fromEntries(this.bound.map((b) => [b.name, b.placeholder]));
  }

  /** Names (never values) and their hosts, for the API. */
  describe(): { name: string; hosts: readonly string[] }[] {
    return this.bound.map((b) => ({ name: b.name, hosts: b.hosts }));
  }

  /** True when some secret is bound to `host`: its CONNECTs are intercepted. */
  hasFor(host: string): boolean {
    const h = normalizeHost(host);
    return this.bound.some((b) => b.hosts.some((p) => hostMatches(p, h)));
  }

  /**
   * Replace the placeholders of the secrets bound to `host` in the header
   * lines of a request head (the request line and the body are left alone).
   * Returns the new head and the names of the secrets used.
   */
  substitute(head: string, host: string): { head: string; used: string[] } {
    const h = normalizeHost(host);
    const mine = this.bound.filter((b) => b.hosts.some((p) => hostMatches(p, h)));
    if (mine.length === 0) return { head, used: [] };
    const used = new Set<string>();
    const nl = head.indexOf('\r\n');
    const first = head.slice(0, nl + 2);
    let rest = head.slice(nl + 2);
    for (const b of mine) {
      if (!rest.includes(b.placeholder)) continue;
      rest = rest.split(b.placeholder).join(b.value);
      used.add(b.name);
    }
    return { head: first + rest, used: [...used] };
  }
}
