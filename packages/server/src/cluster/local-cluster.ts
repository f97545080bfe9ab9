import { randomUUID } from 'node:crypto';
import type { Cluster } from './cluster.js';
import type { ClusterNote, ClusterNoteBody } from './notes.js';

/** The single-instance bus (SQLite): notes go round in process, and this instance leads. */
export class LocalCluster implements Cluster {
  readonly instanceId = `in_${randomUUID()}`;
  readonly shared = false;
  private readonly handlers: ((note: ClusterNote) => void)[] = [];

  async publish(note: ClusterNoteBody): Promise<void> {
    const full = { ...note, i: this.instanceId } as ClusterNote;
    // Delivered on a later tick, like a NOTIFY, so a publisher never re-enters itself.
    queueMicrotask(() => {
      for (const h of this.handlers) h(full);
    });
  }

  onNote(handler: (note: ClusterNote) => void): void {
    this.handlers.push(handler);
  }

  onResync(): void {
    // The in-process bus never drops a note.
  }

  isLeader(): boolean {
    return true;
  }

  async close(): Promise<void> {
    this.handlers.length = 0;
  }
}
