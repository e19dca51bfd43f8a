#!/usr/bin/env node
// In a clone, run the TypeScript sources through tsx, so `npx switchyard` works right after
// `npm ci` and never runs a stale build. The Docker image ships only the compiled dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const source = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source);
} else {
  await import(new URL('../dist/src/cli.js', import.meta.url).href);
}
