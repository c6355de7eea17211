import { defineConfig } from 'vitest/config';

// Unit tests only: what the mutation gate runs (e2e tests start real processes and cannot kill
// mutants in a reasonable time). `npm test` keeps using vitest.config.ts, which runs both.
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
