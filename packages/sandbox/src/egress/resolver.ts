import { promises as dns } from 'node:dns';
import { isIP } from 'node:net';

/**
 * Name resolution for egress, on the host (the guest has no resolver and no
 * network). Either the system's (`lookup`, /etc/hosts included) or given DNS
 * servers (`host` or `host:port`), the daemon's `egress.dnsServers` option.
 * Returns every address, so the caller can refuse a name if ANY of them is in
 * a refused range, and then connect to a vetted address without resolving again.
 */
export class EgressResolver {
  private readonly resolver: dns.Resolver | undefined;

  constructor(servers?: readonly string[], timeoutMs = 3000) {
    if (servers && servers.length > 0) {
      this.resolver = new dns.Resolver({ timeout: timeoutMs, tries: 2 });
      this.resolver.setServers([...servers]);
    }
  }

  /** All addresses of `host` (an IP literal is its own answer); throws Error with a human reason. */
  async resolve(host: string): Promise<string[]> {
    if (isIP(host)) return [host];
    const r = this.resolver;
    if (!r) {
      try {
        const all = await dns.lookup(host, { all: true, verbatim: true });
        return [...new Set(all.map((a) => a.address))];
      } catch (e) {
        throw new Error(`name does not resolve (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
    }
    const [a, aaaa] = await Promise.allSettled([r.resolve4(host), r.resolve6(host)]);
    const out = [...(a.status === 'fulfilled' ? a.value : []), ...(aaaa.status === 'fulfilled' ? aaaa.value : [])];
    if (out.length === 0) {
      const why = a.status === 'rejected' ? (a.reason as NodeJS.ErrnoException).code : 'no addresses';
      throw new Error(`name does not resolve (${why})`);
    }
    return [...new Set(out)];
  }
}
