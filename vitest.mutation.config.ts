import { defineConfig } from 'vitest/config';

/**
 * The suite Stryker runs for each mutant (`npm run mutation`): unit files only, no global setup,
 * so no etcd, HAProxy or dockerd starts and a mutant is judged in milliseconds. A file joins
 * this list only if it needs no daemon; the full suite (vitest.config.ts) still runs them all.
 */
export const mutationTestFiles = [
  'test/parse.test.ts',
  'test/router.test.ts',
  'test/acl.test.ts',
  'test/approval-acl.test.ts',
  'test/acl-store.test.ts',
  'test/haproxy-unit.test.ts',
  'test/quoting.test.ts',
  'test/status.test.ts',
  'test/render-unit.test.ts',
  'test/slack-render.test.ts',
  'test/orchestrator-units.test.ts',
  'test/watch-units.test.ts',
  'test/feed-format.test.ts',
  'test/routed-only.test.ts',
  'test/config.test.ts',
  'test/*-unit.test.ts',
];

export default defineConfig({
  test: {
    include: mutationTestFiles,
    testTimeout: 30_000,
    // Isolation stays on (vitest's default): with isolate: false a mutant that also runs while
    // modules load ("static" activation) is not switched on reliably, and results go wrong.
  },
});
