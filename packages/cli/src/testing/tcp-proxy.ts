// Test support: a loopback TCP proxy the test controls. It balances new connections over
// several targets round robin (skipping targets that refuse), like a load balancer in front
// of several `airlock server` instances, and injects network trouble between a runner and
// the control plane: latency, dropped connections, half-open connections, a slow reader.
import { connect, createServer, type Server, type Socket } from 'node:net';

/** What the proxy does to traffic now. */
export interface ProxyFaults {
  /** Delay every chunk in both directions by this many ms. */
  latencyMs: number;
  /** Stop reading from the client (the runner): its kernel buffers fill, then its own. */
  stallClient: boolean;
  /** Swallow all data both ways without closing (a half-open connection). */
  blackhole: boolean;
  /** Refuse new connections (close them at once). */
  refuse: boolean;
}

interface Pair {
  readonly client: Socket;
  readonly upstream: Socket;
  readonly target: number;
}

export class TcpProxy {
  readonly faults: ProxyFaults = { latencyMs: 0, stallClient: false, blackhole: false, refuse: false };
  private readonly pairs = new Set<Pair>();
  private next = 0;
  /** Bytes received from clients, in total (to see a runner keep sending). */
  clientBytes = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    public targets: number[],
  ) {}

  static async start(targets: number[]): Promise<TcpProxy> {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    const proxy = new TcpProxy(server, typeof addr === 'object' && addr !== null ? addr.port : 0, targets);
    server.on('connection', (c) => proxy.accept(c));
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Open connections per target port. */
  connectionsByTarget(): Map<number, number> {
    const m = new Map<number, number>();
    for (const p of this.pairs) m.set(p.target, (m.get(p.target) ?? 0) + 1);
    return m;
  }

  /** Reset every open connection (both sides see it drop). */
  dropAll(): void {
    for (const p of this.pairs) {
      p.client.resetAndDestroy();
      p.upstream.destroy();
    }
    this.pairs.clear();
  }

  /** Resume reading from clients after `stallClient`. */
  setStall(on: boolean): void {
    this.faults.stallClient = on;
    for (const p of this.pairs) {
      if (on) p.client.pause();
      else p.client.resume();
    }
  }

  async stop(): Promise<void> {
    this.dropAll();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private accept(client: Socket): void {
    if (this.faults.refuse) {
      client.destroy();
      return;
    }
    client.pause();
    this.tryTarget(client, 0);
  }

  private tryTarget(client: Socket, tried: number): void {
    if (tried >= this.targets.length) {
      client.destroy();
      return;
    }
    const target = this.targets[this.next++ % this.targets.length]!;
    const upstream = connect(target, '127.0.0.1');
    const onError = (): void => {
      upstream.destroy();
      this.tryTarget(client, tried + 1);
    };
    upstream.once('error', onError);
    upstream.once('connect', () => {
      upstream.off('error', onError);
      const pair: Pair = { client, upstream, target };
      this.pairs.add(pair);
      const close = (): void => {
        this.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      upstream.on('error', close);
      client.on('error', close);
      upstream.on('close', close);
      client.on('close', close);
      this.pipe(client, upstream, true);
      this.pipe(upstream, client, false);
      if (!this.faults.stallClient) client.resume();
    });
  }

  private pipe(from: Socket, to: Socket, fromClient: boolean): void {
    from.on('data', (chunk: Buffer) => {
      if (fromClient) this.clientBytes += chunk.length;
      if (this.faults.blackhole) return;
      const write = (): void => {
        if (!to.destroyed) to.write(chunk);
      };
      if (this.faults.latencyMs > 0) setTimeout(write, this.faults.latencyMs);
      else write();
    });
  }
}
