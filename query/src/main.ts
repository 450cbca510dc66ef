// The query service, as compiled: what `index.ts` runs, or the entry of its single-file bundle.
import { runMain } from '@blog/common';
import { createQueryService } from './service.js';

await runMain('query', () => createQueryService());
