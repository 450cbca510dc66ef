import { runMain } from '@blog/common';
import { createQueryService } from './service.js';

await runMain('query', () => createQueryService());
