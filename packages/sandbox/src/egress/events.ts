import type { SandboxEgressEvent } from '@airlock/core';

/**
 * The record of every egress attempt of one sandbox: allowed or refused, with
 * what the name resolved to and how many bytes went each way. Kept per sandbox
 * (bounded), served by `GET /sandboxes/{id}/egress`, and handed to listeners
 * (the control-plane link forwards them to the audit trail).
 */
export interface EgressEvent extends SandboxEgressEvent {
  /** The daemon's id of the sandbox (the wire form leaves it out: the frame names the sandbox). */
  readonly sandbox: string;
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
