#!/usr/bin/env node
// Runs the compiled CLI when it exists (Docker image, `npm run build`), otherwise the
// TypeScript sources through tsx, so `npx switchyard` works right after `npm ci`.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const compiled = fileURLToPath(new URL('../dist/src/cli.js', import.meta.url));
if (existsSync(compiled)) {
  await import(compiled);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli.ts');
}
