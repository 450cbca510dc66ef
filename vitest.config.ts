import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Tests run the TypeScript sources directly; only the process-level tests use the built dist/.
    // The longer name first: an alias also matches the names below it.
    alias: {
      '@blog/common/nats-cluster': fileURLToPath(new URL('./common/src/nats-cluster.ts', import.meta.url)),
      '@blog/common/nats-server': fileURLToPath(new URL('./common/src/nats-server.ts', import.meta.url)),
      '@blog/common/process': fileURLToPath(new URL('./common/src/process/index.ts', import.meta.url)),
      '@blog/common/testing': fileURLToPath(new URL('./common/src/testing/nats.ts', import.meta.url)),
      '@blog/common': fileURLToPath(new URL('./common/src/index.ts', import.meta.url)),
      '@blog/router': fileURLToPath(new URL('./router/src/index.ts', import.meta.url)),
    },
  },
  test: {
    // Client tests (.tsx) pick their DOM themselves (`// @vitest-environment happy-dom`): the rest stays on node.
    include: ['*/src/**/*.test.ts', 'client/src/**/*.test.tsx', 'test/**/*.test.ts', 'scripts/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
