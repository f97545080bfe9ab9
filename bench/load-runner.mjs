// A load tool that speaks the runner wire protocol (docs/wire-protocol.md) without running
// anything: it connects many simulated runners to control-plane instances, advertises one
// pack, answers each `run_action` with `accepted` and a synthetic `result` whose audit event
// extends a real hash chain per runner (so the server's mirror checks pass), and records
// when each request arrived and when its result was acknowledged. Not a bench by itself:
// bench/load.bench.mjs drives it. Protocol errors from the server are counted as errors.

import WebSocket from 'ws';
import { appendEvent, digestArgs } from '../packages/core/dist/index.js';

/** The pack every simulated runner advertises (one hash for all, so one trust decision). */
export const SIM_PACK = Object.freeze({
  name: 'loadsim',
  version: '1.0.0',
  hash: `sha256:${'5'.repeat(64)}`,
  actions: ['loadsim.noop'],
  action_risks: { 'loadsim.noop': 'read' },
});

export class SimRunner {
  /** @type {import('ws').WebSocket | undefined} */
  ws;
  head = null;
  connected = false;
  stopped = false;
  heartbeat = undefined;

  /**
   * @param {{name: string, token: string, url: string, stats: LoadStats}} o
   */
  constructor(o) {
    this.name = o.name;
    this.token = o.token;
    this.url = o.url;
    this.stats = o.stats;
  }

  /** Connect and resolve on `welcome`. */
  connect() {
    return new Promise((resolve, reject) => {
      const u = new URL(this.url);
      u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
      u.pathname = '/api/v1/runners/connect';
      const ws = new WebSocket(u, { headers: { authorization: `Bearer ${this.token}` }, maxPayload: 1 << 20 });
      this.ws = ws;
      const timer = setTimeout(() => reject(new Error(`${this.name}: no welcome in 60 s`)), 60_000);
      ws.on('open', () =>
        this.send({
          type: 'hello',
          protocol: 1,
          runner: { name: this.name },
          version: 'loadsim',
          packs: [SIM_PACK],
          capabilities: ['actions'],
          outbox: { pending: 0 },
          log_head: this.head,
        }),
      );
      ws.on('message', (data) => {
        const msg = JSON.parse(data.toString());
        if (msg.type === 'welcome') {
          this.connected = true;
          // Like a real runner: ping every heartbeat so the server knows the idle ones are alive.
          this.heartbeat = setInterval(() => this.send({ type: 'ping', ts: Date.now() }), msg.heartbeat_s * 1000);
          clearTimeout(timer);
          resolve();
        } else this.onMessage(msg);
      });
      ws.on('close', (code) => {
        this.connected = false;
        clearInterval(this.heartbeat);
        if (!this.stopped) this.stats.errors.push(`${this.name}: connection closed (${code})`);
      });
      ws.on('error', (e) => {
        clearTimeout(timer);
        if (!this.stopped) this.stats.errors.push(`${this.name}: ${e.message}`);
        reject(e);
      });
    });
  }

  send(msg) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  onMessage(msg) {
    switch (msg.type) {
      case 'run_action':
        return this.onRun(msg);
      case 'ack':
        this.stats.acked.set(msg.request_id, performance.now());
        return;
      case 'ping':
        return this.send({ type: 'pong', ts: msg.ts });
      case 'pack_files_request':
        return this.send({ type: 'pack_files', request_id: msg.request_id, pack: msg.pack, hash: msg.hash, files: [] });
      case 'error':
        this.stats.errors.push(`${this.name}: server error ${msg.code}: ${msg.message}`);
        return;
      default:
        return;
    }
  }

  onRun(msg) {
    const id = msg.request_id;
    if (this.stats.received.has(id)) {
      this.stats.duplicates++;
      return;
    }
    this.stats.received.set(id, performance.now());
    this.send({ type: 'accepted', request_id: id });
    const now = new Date().toISOString();
    const event = appendEvent(this.head, {
      id,
      time: now,
      kind: 'action.attempt',
      principal: msg.principal,
      runner: this.name,
      action: msg.action,
      pack_hash: msg.pack_hash,
      args_digest: digestArgs(msg.args),
      args: msg.args,
      reason: msg.reason,
      status: 'success',
      exit_code: 0,
      duration_ms: 0,
      output_digest: null,
      output_bytes: 0,
      truncated: false,
      clamped: [],
      error: null,
    });
    this.head = { seq: event.seq, hash: event.hash };
    this.send({
      type: 'result',
      request_id: id,
      status: 'success',
      exit_code: 0,
      duration_ms: 0,
      truncated: false,
      output_bytes: 0,
      clamped: [],
      audit_hash: event.hash,
      started_at: now,
      finished_at: now,
      audit_event: event,
    });
  }

  stop() {
    this.stopped = true;
    clearInterval(this.heartbeat);
    this.ws?.close(1000, 'load test done');
  }
}

/**
 * @typedef {{received: Map<string, number>, acked: Map<string, number>, errors: string[], duplicates: number}} LoadStats
 */

/** Fresh counters shared by all simulated runners. */
export function loadStats() {
  return { received: new Map(), acked: new Map(), errors: [], duplicates: 0 };
}
