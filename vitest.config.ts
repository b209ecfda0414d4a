import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Child-process tests and SQLite fsyncs share two cores: keep parallelism modest.
    maxWorkers: 2,
  },
});
