import { createService, runMain } from '@blog/common';
import { moderationProjection } from './projection.js';

await runMain('moderation', () => createService({ name: 'moderation', projection: moderationProjection }));
