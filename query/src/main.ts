// The query service, as compiled: what `index.ts` runs, or the entry of its single-file bundle. No top-level
// await: the bundle is a CommonJS script (scripts/bundle.mjs), and runMain handles its own failures.
import { runMain } from '@blog/common';
import { createQueryService } from './service.js';

void runMain('query', () => createQueryService());
