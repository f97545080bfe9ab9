import type { Duplex } from 'node:stream';
import { connectUnix } from '../process-util.js';

/**
 * A minimal QEMU Machine Protocol client: one command at a time, JSON lines
 * over the VM's QMP Unix socket. Used for the console ring buffer, pausing
 * (hang tests) and a clean quit.
 */
export class Qmp {
  private buf = '';
  private waiters: ((msg: Record<string, unknown>) => void)[] = [];

  private constructor(private readonly sock: Duplex) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      if (this.buf.length > 4 << 20) this.sock.destroy(); // a QMP answer is never this big
      for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if ('event' in msg) continue;
        this.waiters.shift()?.(msg);
      }
    });
    sock.on('error', () => {});
  }

  /** Connect, read the greeting and enter command mode. */
  static async open(path: string): Promise<Qmp> {
    const q = new Qmp(await connectUnix(path));
    await q.next(); // greeting
    await q.execute('qmp_capabilities');
    return q;
  }

  private next(timeoutMs = 5000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('QMP: no answer')), timeoutMs);
      this.waiters.push((m) => {
        clearTimeout(t);
        resolve(m);
      });
    });
  }

  /** Run a command; resolves with its `return` value, rejects with its `error`. */
  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    const answer = this.next();
    this.sock.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    const m = await answer;
    if (m['error']) throw new Error(`QMP ${command}: ${JSON.stringify(m['error'])}`);
    return m['return'];
  }

  close(): void {
    this.sock.destroy();
  }
}
