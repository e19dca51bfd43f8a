import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Starts the etcd shared by all test files (see test/helpers/etcd.ts); prepares the
    // Docker engine shared by all test files, started only when one asks (test/helpers/docker.ts).
    globalSetup: ['test/global-setup.ts', 'test/helpers/docker.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration suites start real daemons; two workers match the 2-core CI machine.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    pool: 'forks',
  },
});
