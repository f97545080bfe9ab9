/**
 * The record of every egress attempt of one sandbox: allowed or refused, with
 * what the name resolved to and how many bytes went each way. Kept per sandbox
 * (bounded), served by `GET /sandboxes/{id}/egress`, and handed to listeners
 * (the control-plane link forwards them to the audit trail).
 */
export interface EgressEvent {
  /** ISO time the attempt started. */
  readonly time: string;
  readonly sandbox: string;
  /** `CONNECT` (a tunnel, or intercepted when a secret is bound) or the HTTP method of a plain request. */
  readonly method: string;
  readonly host: string;
  readonly port: number;
  /** Every address the name resolved to (empty when refused before resolving). */
  readonly addresses: readonly string[];
  readonly decision: 'allowed' | 'refused';
  /** Why refused, or what went wrong after an allowed decision; `ok` for a clean allowed connection. */
  readonly reason: string;
  /** The CONNECT was terminated with the sandbox's CA to swap in a bound secret. */
  readonly intercepted: boolean;
  /** Secrets (by name) swapped in on this connection. */
  readonly secrets_used: readonly string[];
  readonly bytes_up: number;
  readonly bytes_down: number;
  readonly duration_ms: number;
}

/** Events kept per sandbox; older ones are dropped (and counted). */
export const EGRESS_LOG_SIZE = 1000;

export class EgressLog {
  private readonly events: EgressEvent[] = [];
  /** Events dropped from the front of the log. */
  dropped = 0;
  private readonly listeners = new Set<(e: EgressEvent) => void>();

  push(e: EgressEvent): void {
    this.events.push(e);
    if (this.events.length > EGRESS_LOG_SIZE) {
      this.events.shift();
      this.dropped++;
    }
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // a listener's failure must not break the proxy
      }
    }
  }

  list(): readonly EgressEvent[] {
    return [...this.events];
  }

  on(l: (e: EgressEvent) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
