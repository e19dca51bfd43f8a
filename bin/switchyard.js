#!/usr/bin/env node
// The version check comes before any other import: on an older Node.js the imports
// themselves are what crash.
import { nodeVersionProblem } from './node-version.js';

const problem = nodeVersionProblem(process.versions.node);
if (problem) {
  process.stderr.write(`${problem}\n`);
  process.exit(1);
}

// In a clone, run the TypeScript sources through tsx, so `npx switchyard` works right after
// `npm ci` and never runs a stale build. The Docker image ships only the compiled dist/.
const { existsSync } = await import('node:fs');
const { fileURLToPath } = await import('node:url');
const source = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source);
} else {
  await import(new URL('../dist/src/cli.js', import.meta.url).href);
}
