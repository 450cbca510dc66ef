// query's start file: the single-file bundle (scripts/bundle.mjs) while it is current, else the modules.
import { fileURLToPath } from 'node:url';
import { currentBundle } from './bundle.js';
import { runBundle } from './bundle-run.js';

const bundle = currentBundle(new URL('./index.bundle.js', import.meta.url));
if (bundle) runBundle(fileURLToPath(bundle));
else await import('./main.js');
