/**
 * Counts failures per key (username + client address for logins) in a sliding window and
 * refuses further attempts once the limit is reached, until the oldest failure ages out.
 * In memory, per server instance: with several instances an attacker gets `limit` tries
 * per instance, which still bounds online guessing. The map is bounded.
 */
export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    private readonly maxKeys = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds until another attempt is allowed, or 0 when one is allowed now. */
  retryAfterMs(key: string): number {
    const list = this.live(key);
    if (list.length < this.limit) return 0;
    const oldest = list[list.length - this.limit] ?? this.now();
    return Math.max(1, oldest + this.windowMs - this.now());
  }

  /** Record a failure; returns true when this failure reached the limit. */
  fail(key: string): boolean {
    const list = this.live(key);
    list.push(this.now());
    if (list.length > this.limit) list.splice(0, list.length - this.limit);
    this.failures.delete(key);
    this.failures.set(key, list);
    if (this.failures.size > this.maxKeys) {
      const first = this.failures.keys().next();
      if (first.done !== true) this.failures.delete(first.value);
    }
    return list.length === this.limit;
  }

  /** Forget the failures of a key (after a success). */
  reset(key: string): void {
    this.failures.delete(key);
  }

  /** Drop every expired entry. */
  prune(): void {
    for (const key of [...this.failures.keys()]) {
      if (this.live(key).length === 0) this.failures.delete(key);
    }
  }

  get size(): number {
    return this.failures.size;
  }

  private live(key: string): number[] {
    const cutoff = this.now() - this.windowMs;
    const list = (this.failures.get(key) ?? []).filter((t) => t > cutoff);
    if (list.length === 0) this.failures.delete(key);
    else this.failures.set(key, list);
    return list;
  }
}
