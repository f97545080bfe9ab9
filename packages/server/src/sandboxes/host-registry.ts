import { randomUUID } from 'node:crypto';
import type { SandboxEgressMessage, SandboxHostMessage, SandboxReplyMessage, WireMessage } from '@airlock/core';
import type { RunnersTable } from '../db/schema.js';
import { ApiError } from '../http/api-error.js';
import type { HubExtension, RunnerHub } from '../runners/hub.js';

/** A connected sandbox host as placement sees it. */
export interface SandboxHost {
  runner: RunnersTable;
  /** The latest advert; updated in place so in-flight counts held by callers stay on one object. */
  advert: SandboxHostMessage;
  /** Creates sent to it and not answered yet (they will take a slot and memory). */
  inflight: number;
  inflightMemoryMb: number;
}

/** Requests the server sends to a sandbox host. */
export type SandboxRequest = Extract<
  WireMessage,
  { type: 'sandbox_create' | 'sandbox_exec' | 'sandbox_write_file' | 'sandbox_read_file' | 'sandbox_destroy' }
>;

/** A request before the registry gives it an id. */
export type SandboxRequestBody = SandboxRequest extends infer T
  ? T extends unknown
    ? Omit<T, 'request_id'>
    : never
  : never;

type Pending = {
  readonly runnerId: string;
  /** Host-local sandbox id the request is about (none for a create). */
  readonly sandbox: string | undefined;
  readonly resolve: (r: SandboxReplyMessage) => void;
  readonly reject: (e: Error) => void;
  readonly onOutput: ((stream: 'stdout' | 'stderr', data: string, seq: number) => void) | undefined;
  readonly timer: NodeJS.Timeout;
};

/** What the registry tells the sandbox service about. */
export interface RegistryEvents {
  /** A host (re)advertised; reconcile the database with the sandboxes it really has. */
  onAdvert(host: SandboxHost, busy: ReadonlySet<string>): Promise<void>;
  /** A host's connection ended: its sandboxes cannot be reached. */
  onHostGone(runnerId: string): Promise<void>;
  /** A host reported one egress attempt of one of its sandboxes. */
  onEgress(runner: RunnersTable, msg: SandboxEgressMessage): Promise<void>;
}

/** How long a sandbox id stays "busy" after its last request, so an advert racing a reply is not misread. */
const BUSY_GRACE_MS = 5000;

/**
 * The sandbox hosts connected to this instance and the requests in flight to them. Requests
 * go over the host's runner connection (the host never listens); each has a timeout, and a
 * host that disconnects fails its requests at once with `host_disconnected`.
 */
export class SandboxHostRegistry implements HubExtension {
  private readonly hosts = new Map<string, SandboxHost>();
  private readonly pending = new Map<string, Pending>();
  private readonly recent = new Map<string, number>();

  constructor(
    private readonly hub: RunnerHub,
    private readonly events: RegistryEvents,
  ) {}

  /** Hosts of an organisation that are connected and have advertised. */
  hostsOf(orgId: string): SandboxHost[] {
    return [...this.hosts.values()].filter((h) => h.runner.org_id === orgId);
  }

  host(runnerId: string): SandboxHost | undefined {
    return this.hosts.get(runnerId);
  }

  /** Host-local sandbox ids with a request in flight (or one that just ended). */
  busy(runnerId: string): Set<string> {
    const out = new Set<string>();
    const now = Date.now();
    for (const p of this.pending.values()) if (p.runnerId === runnerId && p.sandbox !== undefined) out.add(p.sandbox);
    for (const [key, t] of this.recent) {
      if (now - t > BUSY_GRACE_MS) this.recent.delete(key);
      else if (key.startsWith(`${runnerId}\u0000`)) out.add(key.slice(runnerId.length + 1));
    }
    return out;
  }

  async onMessage(runner: RunnersTable, msg: WireMessage): Promise<boolean> {
    switch (msg.type) {
      case 'sandbox_host': {
        let host = this.hosts.get(runner.id);
        if (host === undefined) {
          host = { runner, advert: msg, inflight: 0, inflightMemoryMb: 0 };
          this.hosts.set(runner.id, host);
        } else {
          host.runner = runner;
          host.advert = msg;
        }
        await this.events.onAdvert(host, this.busy(runner.id));
        return true;
      }
      case 'sandbox_output': {
        const p = this.pending.get(msg.request_id);
        if (p !== undefined && p.runnerId === runner.id) p.onOutput?.(msg.stream, msg.data, msg.seq);
        return true;
      }
      case 'sandbox_egress':
        // A failure to record throws before the ack: the hub closes the connection, and the
        // host sends the event again after it reconnects.
        await this.events.onEgress(runner, msg);
        if (msg.id !== undefined) this.hub.sendTo(runner.id, { type: 'sandbox_egress_ack', ids: [msg.id] });
        return true;
      case 'sandbox_reply': {
        const p = this.pending.get(msg.request_id);
        if (p === undefined || p.runnerId !== runner.id) return true; // late (timed out) or foreign: dropped
        this.pending.delete(msg.request_id);
        clearTimeout(p.timer);
        const id = msg.sandbox?.id ?? p.sandbox;
        if (id !== undefined) this.recent.set(`${runner.id}\u0000${id}`, Date.now());
        p.resolve(msg);
        return true;
      }
      default:
        return false;
    }
  }

  async onClose(runnerId: string): Promise<void> {
    const had = this.hosts.delete(runnerId);
    for (const key of this.recent.keys()) if (key.startsWith(`${runnerId}\u0000`)) this.recent.delete(key);
    for (const [id, p] of this.pending) {
      if (p.runnerId !== runnerId) continue;
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(
        new ApiError(
          502,
          'host_disconnected',
          'the sandbox host disconnected before it answered; the result is unknown',
        ),
      );
    }
    if (had) await this.events.onHostGone(runnerId);
  }

  /** Send one request to a host and wait for its reply (or a timeout, or the host leaving). */
  request(
    runnerId: string,
    msg: SandboxRequestBody,
    timeoutMs: number,
    onOutput?: (stream: 'stdout' | 'stderr', data: string, seq: number) => void,
  ): Promise<SandboxReplyMessage> {
    const requestId = `sx-${randomUUID()}`;
    const frame = { ...msg, request_id: requestId } as SandboxRequest;
    return new Promise<SandboxReplyMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(
          new ApiError(504, 'host_timeout', `the sandbox host did not answer within ${Math.round(timeoutMs / 1000)} s`),
        );
      }, timeoutMs);
      timer.unref();
      this.pending.set(requestId, {
        runnerId,
        sandbox: 'sandbox' in frame ? frame.sandbox : undefined,
        resolve,
        reject,
        onOutput,
        timer,
      });
      if (!this.hub.sendTo(runnerId, frame)) {
        this.pending.delete(requestId);
        clearTimeout(timer);
        reject(new ApiError(503, 'host_offline', 'the sandbox host is not connected'));
      }
    });
  }

  close(): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new ApiError(503, 'host_offline', 'the server is shutting down'));
    }
    this.pending.clear();
  }
}
