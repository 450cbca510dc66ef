import { defineConfig } from 'vitest/config';
import baseConfig from './vitest.config.js';

// `npm run test:unit`: the tests beside the code of the packages, which run in this process. Left to
// `npm test`: test/ (several services together), scripts/ (tests that spawn the services or the router)
// and the NATS tests (each starts a nats-server).
export default defineConfig({
  ...baseConfig,
  test: {
    ...baseConfig.test,
    include: [
      '{common,posts,comments,moderation,query,event-bus}/src/**/*.test.ts',
      'client/src/**/*.test.{ts,tsx}',
    ],
    exclude: [...(baseConfig.test?.exclude ?? []), '**/src/**/nats*.test.ts'],
  },
});
