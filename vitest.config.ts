import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    exclude: ['node_modules/**', 'dist/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Child-process tests and SQLite fsyncs share two cores: keep parallelism modest.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          // The simulated-radio tests (link/manager: restarts, lossy radio, a 200-lock site) take
          // 3-10 s on a quiet core and 30 s+ at a load of 8 on two cores: 60 s keeps 6x headroom.
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          // Real processes, brokers and emulators: on a quiet x64 core the slowest of these take
          // 20-27 s (site-crash, provision-cli); a Pi or a loaded CI machine is several times
          // slower. A test that sets its own timeout keeps it.
          testTimeout: 90_000,
          hookTimeout: 90_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'vm',
          // The hub image booted under QEMU (test/vm/boot.test.ts): only with IQHUB_VM_TEST=1
          // (.ci/run sets it); the file sets its own timeouts (image build and boot: minutes).
          include: ['test/vm/**/*.test.ts'],
        },
      },
    ],
  },
});
