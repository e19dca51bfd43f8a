// Mutation testing (`npm run mutation`, docs/TESTING.md "Mutation testing"). Not part of
// `npm test` or CI: a run takes minutes, and its score is read by people, not gated on.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  // The pure decision code: tokenizer, argument binding, names, ACL, router, and the HAProxy
  // model and plan the agent applies. I/O wiring is proven by the integration suites instead.
  mutate: ['src/core/**/*.ts', 'src/adapters/haproxy/model.ts', 'src/adapters/haproxy/plan.ts'],
  testRunner: 'vitest',
  // Unit files only: no etcd, HAProxy or dockerd starts for each mutant.
  vitest: { configFile: 'vitest.mutation.config.ts' },
  coverageAnalysis: 'perTest',
  // Static mutants (module-level constants: the zod schemas, regexes, tables) cannot be tied
  // to single tests, so each one reloads and re-runs every related file: about 20 % of the
  // mutants for 85 % of the time. The run leaves them out (counted as ignored); the schemas
  // they would mutate are exercised by the acl.yaml validation tests all the same.
  ignoreStatic: true,
  // Two shared cores.
  concurrency: 2,
  timeoutMS: 5000,
  // A second run re-tests only mutants whose code or covering tests changed.
  incremental: true,
  incrementalFile: 'reports/mutation/stryker-incremental.json',
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  // The sandbox needs the sources, tests and configs, not build output or local data.
  ignorePatterns: ['dist', '.switchyard', '.ci', 'reports', 'coverage', 'bench', 'docs', 'examples', '.stryker-tmp'],
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  clearTextReporter: { allowColor: false, logTests: false, reportScoreTable: true, reportMutants: true },
  thresholds: { high: 90, low: 85, break: null },
};
