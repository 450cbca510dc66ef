// query's start file: the single-file bundle (scripts/bundle.mjs) while it is current, else the modules.
import { currentBundle } from './bundle.js';

await import(currentBundle(new URL('./index.bundle.js', import.meta.url)) ?? './main.js');
