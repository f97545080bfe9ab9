import { Duplex } from 'node:stream';
import type { GuestChannel } from '../guest/channel.js';
import { CHUNK, NET_WINDOW } from '../guest/protocol.js';

/**
 * One egress stream (a connection the guest accepted on its proxy endpoint)
 * as a Node Duplex. Flow control both ways: we keep at most NET_WINDOW bytes
 * unacknowledged towards the guest (writes wait for its NET_ACK), and we
 * acknowledge the guest's bytes only once our reader has taken them, so a
 * stalled upstream stops the guest's client instead of growing our memory.
 * A guest that overruns the window gets this stream closed.
 */
export class GuestStream extends Duplex {
  private unackedOut = 0;
  private heldAck = 0;
  private waiters: (() => void)[] = [];
  private sentClose = false;
  private gotClose = false;

  constructor(
    readonly streamId: number,
    private readonly channel: GuestChannel,
  ) {
    super({ allowHalfOpen: true });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.sendChunks(chunk).then(
      () => cb(),
      (e: unknown) => cb(e as Error),
    );
  }

  private async sendChunks(buf: Buffer): Promise<void> {
    for (let o = 0; o < buf.length; o += CHUNK) {
      const piece = buf.subarray(o, o + CHUNK);
      while (this.unackedOut + piece.length > NET_WINDOW) {
        if (this.destroyed) throw new Error('egress stream closed');
        await new Promise<void>((r) => this.waiters.push(r));
      }
      if (this.destroyed) throw new Error('egress stream closed');
      this.unackedOut += piece.length;
      await this.channel.netData(this.streamId, piece);
    }
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.sendClose();
    cb();
  }

  override _read(): void {
    if (this.heldAck > 0) {
      const n = this.heldAck;
      this.heldAck = 0;
      this.channel.netAck(this.streamId, n);
    }
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.sendClose();
    for (const w of this.waiters.splice(0)) w();
    cb(err);
  }

  private sendClose(): void {
    if (this.sentClose) return;
    this.sentClose = true;
    this.channel.netClose(this.streamId);
  }

  /** Bytes from the guest. */
  deliver(data: Buffer): void {
    if (this.gotClose || this.destroyed) return;
    if (this.heldAck + data.length > NET_WINDOW) {
      this.destroy(new Error(`guest overran the stream window of ${NET_WINDOW} bytes`));
      return;
    }
    if (this.push(data)) this.channel.netAck(this.streamId, data.length);
    else this.heldAck += data.length;
  }

  /** The guest sends no more. */
  remoteClosed(): void {
    if (this.gotClose) return;
    this.gotClose = true;
    this.push(null);
  }

  acked(bytes: number): void {
    this.unackedOut = Math.max(0, this.unackedOut - bytes);
    for (const w of this.waiters.splice(0)) w();
  }

  /** The channel died: nothing can be sent any more. */
  lost(): void {
    this.sentClose = true;
    this.destroy();
  }
}
