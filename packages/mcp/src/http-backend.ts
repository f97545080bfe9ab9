import {
  type ActionInfo,
  type AirlockBackend,
  BackendError,
  isFinalStatus,
  type OutputLine,
  type RunInfo,
  type RunnerInfo,
  type RunRequest,
  type SandboxApi,
  type SandboxExecInfo,
  type SandboxInfo,
} from './backend.js';

export interface HttpBackendOptions {
  /** Control plane URL, e.g. http://127.0.0.1:7700. */
  readonly server: string;
  /** API key (`alk_…`) or OAuth access token. */
  readonly token: string;
  readonly fetch?: typeof fetch;
  /** Per-request timeout for plain calls (ms, default 30 s). */
  readonly timeoutMs?: number;
}

/** The MCP backend over the control plane's REST API, for the stdio bridge. */
export class HttpBackend implements AirlockBackend {
  private readonly base: string;
  private readonly f: typeof fetch;

  constructor(private readonly opts: HttpBackendOptions) {
    this.base = opts.server.replace(/\/+$/, '');
    this.f = opts.fetch ?? fetch;
  }

  private async call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    let res: Response;
    try {
      res = await this.f(`${this.base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.opts.token}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: signal ?? AbortSignal.timeout(this.opts.timeoutMs ?? 30_000),
      });
    } catch (err) {
      throw new BackendError(
        'unavailable',
        `cannot reach the airlock server at ${this.base}: ${(err as Error).message}`,
        503,
      );
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const e = (
        parsed as
          | { error?: { code?: string; message?: string; fields?: { field: string; message: string }[] } }
          | undefined
      )?.error;
      throw new BackendError(
        e?.code ?? `http_${res.status}`,
        e?.message ?? `HTTP ${res.status}`,
        res.status,
        e?.fields ?? [],
      );
    }
    return parsed as T;
  }

  /** Sandboxes over the REST API; exec follows the NDJSON stream for progress. */
  readonly sandboxes: SandboxApi = {
    available: async () => {
      const r = await this.call<{ hosts: unknown[] }>('GET', '/api/v1/sandboxes/hosts');
      return r.hosts.length > 0;
    },
    create: (req) => this.call<SandboxInfo>('POST', '/api/v1/sandboxes', req, AbortSignal.timeout(6 * 60_000)),
    list: async () => (await this.call<{ sandboxes: SandboxInfo[] }>('GET', '/api/v1/sandboxes')).sandboxes,
    destroy: (id) => this.call<SandboxInfo>('DELETE', `/api/v1/sandboxes/${encodeURIComponent(id)}`),
    writeFile: (id, path, content) =>
      this.call('PUT', `/api/v1/sandboxes/${encodeURIComponent(id)}/files`, { path, content }),
    readFile: (id, path) =>
      this.call('GET', `/api/v1/sandboxes/${encodeURIComponent(id)}/files?path=${encodeURIComponent(path)}`),
    exec: (id, req, onOutput, signal) => this.execStream(id, req, onOutput, signal),
  };

  private async execStream(
    id: string,
    req: { code: string; timeout_ms?: number; stdin?: string },
    onOutput: (stream: 'stdout' | 'stderr', data: string) => void,
    signal: AbortSignal,
  ): Promise<SandboxExecInfo> {
    let res: Response;
    try {
      res = await this.f(`${this.base}/api/v1/sandboxes/${encodeURIComponent(id)}/exec?stream=1`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${this.opts.token}`,
          'content-type': 'application/json',
          accept: 'application/x-ndjson',
        },
        body: JSON.stringify(req),
        signal,
      });
    } catch (err) {
      throw new BackendError(
        'unavailable',
        `cannot reach the airlock server at ${this.base}: ${(err as Error).message}`,
        503,
      );
    }
    if (!res.ok || res.body === null) {
      const body = (await res.json().catch(() => ({}))) as {
        error?: { code?: string; message?: string; fields?: { field: string; message: string }[] };
      };
      throw new BackendError(
        body.error?.code ?? `http_${res.status}`,
        body.error?.message ?? `HTTP ${res.status}`,
        res.status,
        body.error?.fields ?? [],
      );
    }
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim() === '') continue;
        const ev = JSON.parse(line) as { type: string; data?: string; error?: { code: string; message: string } };
        if (ev.type === 'stdout' || ev.type === 'stderr') onOutput(ev.type, ev.data ?? '');
        else if (ev.type === 'result') return ev as unknown as SandboxExecInfo;
        else if (ev.type === 'error')
          throw new BackendError(ev.error?.code ?? 'internal', ev.error?.message ?? 'exec failed', 502);
      }
    }
    throw new BackendError('unavailable', 'the exec stream ended without a result', 502);
  }

  async permissions(): Promise<ReadonlySet<string>> {
    const me = await this.call<{ permissions: string[] }>('GET', '/api/v1/auth/me');
    return new Set(me.permissions);
  }

  async listRunners(): Promise<RunnerInfo[]> {
    return (await this.call<{ runners: RunnerInfo[] }>('GET', '/api/v1/runners')).runners;
  }

  async listActions(): Promise<ActionInfo[]> {
    return (await this.call<{ actions: ActionInfo[] }>('GET', '/api/v1/mcp/actions')).actions;
  }

  createRun(req: RunRequest): Promise<RunInfo> {
    return this.call<RunInfo>('POST', '/api/v1/runs', req);
  }

  getRun(id: string): Promise<RunInfo> {
    return this.call<RunInfo>('GET', `/api/v1/runs/${encodeURIComponent(id)}`);
  }

  getOutput(id: string, after: number, limit: number): Promise<{ lines: OutputLine[] }> {
    return this.call(
      'GET',
      `/api/v1/runs/${encodeURIComponent(id)}/output?after=${after}&limit=${Math.min(limit, 10000)}`,
    );
  }

  cancelRun(id: string, reason: string): Promise<RunInfo> {
    return this.call<RunInfo>('POST', `/api/v1/runs/${encodeURIComponent(id)}/cancel`, { reason });
  }

  runUrl(id: string): string {
    return `${this.base}/runs/${encodeURIComponent(id)}`;
  }

  /** Follow the run's Server-Sent Events stream (`output`, `status`, `end`). */
  async watchRun(
    id: string,
    handlers: { onOutput(line: OutputLine): void; onStatus(run: RunInfo): void },
    signal: AbortSignal,
  ): Promise<RunInfo> {
    let last: RunInfo | undefined;
    try {
      const res = await this.f(`${this.base}/api/v1/runs/${encodeURIComponent(id)}/stream`, {
        headers: { authorization: `Bearer ${this.opts.token}`, accept: 'text/event-stream' },
        signal,
      });
      if (!res.ok || res.body === null) {
        await res.body?.cancel();
        return await this.getRun(id).then((r) => {
          if (!res.ok && res.status !== 404)
            throw new BackendError(`http_${res.status}`, `cannot follow run ${id}: HTTP ${res.status}`, res.status);
          return r;
        });
      }
      const decoder = new TextDecoder();
      let buf = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = 'message';
          let data = '';
          for (const line of frame.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trim();
          }
          if (data === '') continue;
          const value = JSON.parse(data) as unknown;
          if (event === 'output') handlers.onOutput(value as OutputLine);
          else if (event === 'status') {
            last = value as RunInfo;
            handlers.onStatus(last);
          } else if (event === 'end' && last !== undefined && isFinalStatus(last.status)) return last;
        }
      }
    } catch (err) {
      if (!signal.aborted) {
        if (err instanceof BackendError) throw err;
      }
    }
    return this.getRun(id);
  }
}
