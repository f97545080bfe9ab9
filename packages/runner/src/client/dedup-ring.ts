import { closeSync, existsSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';

/**
 * Request ids this runner has finished and had acknowledged, kept on disk (bounded) so a
 * run_action re-sent after any reconnect or restart is recognised and never executed twice.
 */
export class DedupRing {
  private readonly ids: string[] = [];
  private readonly set = new Set<string>();
  /** Lines in the file, including ids already pushed out of the ring. */
  private lines = 0;
  /** Kept open: one write per acknowledged id instead of open, write and close. */
  private fd: number | undefined;

  constructor(
    private readonly path: string,
    private readonly capacity = 4096,
  ) {
    if (existsSync(path)) {
      for (const id of readFileSync(path, 'utf8').split('\n')) {
        if (id === '') continue;
        this.remember(id);
        this.lines++;
      }
    }
  }

  has(id: string): boolean {
    return this.set.has(id);
  }

  add(id: string): void {
    if (this.set.has(id)) return;
    this.remember(id);
    this.fd ??= openSync(this.path, 'a', 0o600);
    writeSync(this.fd, `${id}\n`);
    this.lines++;
    // Compact the file when it holds twice what we keep (counted, not re-read on every add).
    if (this.lines > this.capacity * 2) {
      writeFileSync(`${this.path}.tmp`, `${this.ids.join('\n')}\n`, { mode: 0o600 });
      renameSync(`${this.path}.tmp`, this.path);
      closeSync(this.fd);
      this.fd = undefined;
      this.lines = this.ids.length;
    }
  }

  private remember(id: string): void {
    this.ids.push(id);
    this.set.add(id);
    while (this.ids.length > this.capacity) this.set.delete(this.ids.shift()!);
  }
}
