import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // e2e tests start real processes; two cores do not like more than two at once.
    maxWorkers: 2,
    pool: 'forks',
  },
});
