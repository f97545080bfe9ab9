import { createRedactor, type LineRedactor } from '@airlock/core';

const redactor = createRedactor();

/**
 * Redacts one output stream of an exec as it arrives. Chunks are cut anywhere, so only whole
 * lines are redacted and passed on; the unfinished tail waits for its newline (or the end).
 * Output leaves the host only through this, so a secret printed by guest code is masked
 * before the control plane sees it (the same rule as action output).
 */
export class StreamRedactor {
  private tail = '';
  private readonly lines: LineRedactor = redactor.stream();
  readonly hits = new Set<string>();

  /** Feed a chunk; returns the redacted whole lines it completed (may be ''). */
  push(chunk: string): string {
    this.tail += chunk;
    const cut = this.tail.lastIndexOf('\n');
    if (cut < 0) {
      // An endless line must not grow memory without bound: pass it on in pieces.
      if (this.tail.length < 16 * 1024) return '';
      const piece = this.tail;
      this.tail = '';
      return this.redact(piece);
    }
    const done = this.tail.slice(0, cut);
    this.tail = this.tail.slice(cut + 1);
    return `${done
      .split('\n')
      .map((l) => this.redact(l))
      .join('\n')}\n`;
  }

  /** The redacted unfinished tail, at the end of the exec. */
  flush(): string {
    const rest = this.tail;
    this.tail = '';
    return rest === '' ? '' : this.redact(rest);
  }

  private redact(line: string): string {
    const r = this.lines(line);
    for (const h of r.hits) this.hits.add(h);
    return r.text;
  }
}

/** Redact a whole text at once (final results, files read back); returns the rules that fired too. */
export function redactWhole(text: string): { text: string; hits: string[] } {
  const s = new StreamRedactor();
  const out = s.push(text) + s.flush();
  return { text: out, hits: [...s.hits] };
}
