/** Splits a stream's chunks into whole lines (the last partial line waits for the next chunk or `flush`). */
export class LineSplitter {
  private pending = '';

  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Buffer | string): void {
    const text = this.pending + chunk.toString();
    const lines = text.split(/\r?\n/);
    this.pending = lines.pop() ?? '';
    for (const line of lines) if (line.length > 0) this.onLine(line);
  }

  flush(): void {
    if (this.pending.length > 0) this.onLine(this.pending);
    this.pending = '';
  }
}
