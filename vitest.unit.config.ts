import { defineConfig } from 'vitest/config';
import baseConfig from './vitest.config.js';

// `npm run test:unit`: the tests beside the code of the packages, which run in this process. Left to
// `npm test`: test/ (several packages together), scripts/ and router/ (tests that spawn the services or
// the router), the NATS tests (each starts a nats-server) and the process supervisor's (it spawns children).
export default defineConfig({
  ...baseConfig,
  test: {
    ...baseConfig.test,
    include: [
      '{common,posts,comments,moderation,query,event-bus}/src/**/*.test.ts',
      'client/src/**/*.test.{ts,tsx}',
    ],
    exclude: [
      ...(baseConfig.test?.exclude ?? []),
      '**/src/**/nats*.test.ts',
      'common/src/process/managed-process.test.ts',
    ],
    // Worker threads that keep the modules they loaded from one file to the next: starting a worker and
    // importing the same modules again for every file took most of the run.
    pool: 'threads',
    isolate: false,
  },
});
