import { StringDecoder } from 'node:string_decoder';

/**
 * Splits a byte stream into lines without ever holding more than `maxLine` characters:
 * a longer line is emitted in pieces marked `partial`, so a process that prints one
 * endless line cannot make the runner buffer it forever. UTF-8 sequences split across
 * chunks are kept whole.
 */
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';

  constructor(
    private readonly maxLine: number,
    private readonly emit: (line: string, partial: boolean) => void,
  ) {}

  push(chunk: Buffer): void {
    this.pending += this.decoder.write(chunk);
    let nl = this.pending.indexOf('\n');
    while (nl !== -1) {
      this.emitBounded(this.pending.slice(0, nl).replace(/\r$/, ''), false);
      this.pending = this.pending.slice(nl + 1);
      nl = this.pending.indexOf('\n');
    }
    while (this.pending.length > this.maxLine) {
      this.emit(this.pending.slice(0, this.maxLine), true);
      this.pending = this.pending.slice(this.maxLine);
    }
  }

  /** Flush what is left (a last line without a newline). */
  end(): void {
    this.pending += this.decoder.end();
    if (this.pending.length > 0) this.emitBounded(this.pending, false);
    this.pending = '';
  }

  private emitBounded(line: string, partial: boolean): void {
    let rest = line;
    while (rest.length > this.maxLine) {
      this.emit(rest.slice(0, this.maxLine), true);
      rest = rest.slice(this.maxLine);
    }
    this.emit(rest, partial);
  }
}
