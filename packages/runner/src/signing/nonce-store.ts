import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Nonces of signed envelopes this runner has accepted, kept on disk until the envelope they
 * came with expires (after that, the envelope itself is refused as expired). A nonce is
 * written and fsynced before the action starts, so a crash cannot make it usable twice.
 */
export class NonceStore {
  private readonly seen = new Map<string, number>();

  constructor(private readonly file: string) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    if (existsSync(file)) {
      const now = Date.now();
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        const [nonce, until] = line.split(' ');
        const t = Number(until);
        if (nonce !== undefined && nonce !== '' && Number.isFinite(t) && t > now) this.seen.set(nonce, t);
      }
      // Compact: drop expired entries.
      writeFileSync(file, [...this.seen].map(([n, t]) => `${n} ${t}\n`).join(''), { mode: 0o600 });
    }
  }

  has(nonce: string): boolean {
    return this.seen.has(nonce);
  }

  /** Remember a nonce until `untilMs`; durable when this returns. */
  add(nonce: string, untilMs: number): void {
    this.seen.set(nonce, untilMs);
    const fd = openSync(this.file, 'a', 0o600);
    try {
      writeSync(fd, `${nonce} ${untilMs}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}
