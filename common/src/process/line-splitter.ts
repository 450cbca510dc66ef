import { StringDecoder } from 'node:string_decoder';

/** Splits a stream's chunks into whole lines (the last partial line waits for the next chunk or `flush`). */
export class LineSplitter {
  private pending = '';
  // A character of several UTF-8 bytes may be cut between two chunks: the decoder keeps its first bytes.
  private readonly decoder = new StringDecoder('utf8');

  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Buffer | string): void {
    const text = this.pending + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
    const lines = text.split(/\r?\n/);
    this.pending = lines.pop() ?? '';
    for (const line of lines) if (line.length > 0) this.onLine(line);
  }

  flush(): void {
    this.pending += this.decoder.end();
    if (this.pending.length > 0) this.onLine(this.pending);
    this.pending = '';
  }
}
