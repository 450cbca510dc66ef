/** How a child process ended: its exit code, or the signal that ended it. */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export function describeExit(exit: ExitInfo): string {
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}

/** A start that failed: which process, and the end of what it wrote. */
export class StartError extends Error {
  override name = 'StartError';
  constructor(
    message: string,
    readonly service?: string,
    readonly output: string[] = [],
  ) {
    super(output.length ? `${message}\n  ${output.slice(-20).join('\n  ')}` : message);
  }
}
