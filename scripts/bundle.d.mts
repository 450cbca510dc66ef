// The types of scripts/bundle.mjs, for the tests that import it.
export function bundleService(
  service: string,
  rootDir?: string,
  options?: { installRecordOf?: string },
): Promise<{ file: string; bytes: number }>;
export function bundledServices(rootDir?: string): string[];
