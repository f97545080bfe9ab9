import type { EgressEvent } from './egress/events.js';
import { SANDBOX_ERROR_CODES, SandboxError, type SandboxErrorCode } from './errors.js';
import type { ExecEvent, ExecResult } from './sandbox.js';

/** `GET /sandboxes/{id}/egress`: the sandbox's egress policy (secret names only) and its attempts. */
export interface EgressReport {
  readonly sandbox: string;
  readonly enabled: boolean;
  readonly allow: readonly string[];
  readonly secrets: readonly { name: string; hosts: readonly string[] }[];
  readonly events: readonly EgressEvent[];
  readonly dropped_events: number;
}

/** Default daemon address: `$AIRLOCK_SANDBOX_ADDR` or 127.0.0.1:7777. */
export function defaultDaemonAddress(env: NodeJS.ProcessEnv = process.env): string {
  return env['AIRLOCK_SANDBOX_ADDR'] ?? '127.0.0.1:7777';
}

/**
 * A small client for the sandbox daemon's HTTP API (used by the CLI, the
 * examples and the tests). Error bodies become SandboxErrors with the
 * daemon's code.
 */
export class SandboxClient {
  readonly base: string;

  constructor(address: string = defaultDaemonAddress()) {
    this.base = address.startsWith('http') ? address.replace(/\/$/, '') : `http://${address}`;
  }

  private async call(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        method,
        ...(body === undefined
          ? {}
          : { body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body) }),
        ...(signal ? { signal } : {}),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code;
      throw new SandboxError(
        'backend_unavailable',
        `cannot reach the sandbox daemon at ${this.base} (${cause ?? (e as Error).message}); start it with "airlock sandbox serve"`,
      );
    }
    if (res.ok) return res;
    let code: SandboxErrorCode = 'internal';
    let message = `${method} ${path}: HTTP ${res.status}`;
    try {
      const j = (await res.json()) as { error?: { code?: string; message?: string } };
      if (j.error?.code && j.error.code in SANDBOX_ERROR_CODES) code = j.error.code as SandboxErrorCode;
      if (j.error?.message) message = j.error.message;
    } catch {
      // not a JSON error body
    }
    throw new SandboxError(code, message);
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await (await this.call(method, path, body)).json()) as T;
  }

  info(): Promise<Record<string, unknown>> {
    return this.json('GET', '/info');
  }

  create(body: Record<string, unknown> = {}): Promise<{ id: string } & Record<string, unknown>> {
    return this.json('POST', '/sandboxes', body);
  }

  list(): Promise<{ sandboxes: ({ id: string } & Record<string, unknown>)[] }> {
    return this.json('GET', '/sandboxes');
  }

  inspect(id: string): Promise<Record<string, unknown>> {
    return this.json('GET', `/sandboxes/${encodeURIComponent(id)}`);
  }

  exec(id: string, body: Record<string, unknown>, signal?: AbortSignal): Promise<ExecResult> {
    return this.call('POST', `/sandboxes/${encodeURIComponent(id)}/exec`, body, signal).then(
      (r) => r.json() as Promise<ExecResult>,
    );
  }

  /** Streamed exec: `onEvent` gets each NDJSON event; resolves with the final `exit` (or `error`) event. */
  async execStream(
    id: string,
    body: Record<string, unknown>,
    onEvent: (e: ExecEvent) => void,
    signal?: AbortSignal,
  ): Promise<ExecEvent> {
    const res = await this.call('POST', `/sandboxes/${encodeURIComponent(id)}/exec?stream=1`, body, signal);
    return readNdjson(res, onEvent);
  }

  /** Start a background process; returns its description (with `id`). */
  background(id: string, body: Record<string, unknown>): Promise<{ id: string } & Record<string, unknown>> {
    return this.json('POST', `/sandboxes/${encodeURIComponent(id)}/exec`, { ...body, background: true });
  }

  /** Re-attach to a background process: replays buffered output, follows until it ends. */
  async attach(id: string, proc: string, onEvent: (e: ExecEvent) => void): Promise<ExecEvent> {
    const res = await this.call(
      'GET',
      `/sandboxes/${encodeURIComponent(id)}/processes/${encodeURIComponent(proc)}/output?stream=1`,
    );
    return readNdjson(res, onEvent);
  }

  signal(id: string, proc: string, signal: string | number): Promise<Record<string, unknown>> {
    return this.json('POST', `/sandboxes/${encodeURIComponent(id)}/processes/${encodeURIComponent(proc)}/signal`, {
      signal,
    });
  }

  async putFile(
    id: string,
    path: string,
    data: Uint8Array | string,
    mode?: string,
  ): Promise<{ path: string; size: number }> {
    const q = new URLSearchParams({ path, ...(mode ? { mode } : {}) });
    return (
      await this.call(
        'PUT',
        `/sandboxes/${encodeURIComponent(id)}/files?${q}`,
        typeof data === 'string' ? Buffer.from(data) : data,
      )
    ).json() as Promise<{ path: string; size: number }>;
  }

  async getFile(id: string, path: string): Promise<Buffer> {
    const res = await this.call('GET', `/sandboxes/${encodeURIComponent(id)}/files?${new URLSearchParams({ path })}`);
    return Buffer.from(await res.arrayBuffer());
  }

  /** The sandbox's egress policy and every egress attempt it made. */
  egress(id: string): Promise<EgressReport> {
    return this.json('GET', `/sandboxes/${encodeURIComponent(id)}/egress`);
  }

  /** Delete (idempotent: deleting an unknown id succeeds). */
  async delete(id: string): Promise<void> {
    await this.call('DELETE', `/sandboxes/${encodeURIComponent(id)}`);
  }
}

async function readNdjson(res: Response, onEvent: (e: ExecEvent) => void): Promise<ExecEvent> {
  let last: ExecEvent | undefined;
  let buf = '';
  const dec = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += dec.decode(chunk, { stream: true });
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      const e = JSON.parse(line) as ExecEvent;
      last = e;
      onEvent(e);
    }
  }
  if (!last) throw new SandboxError('guest_lost', 'stream ended without an exit event');
  return last;
}
