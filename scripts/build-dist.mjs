#!/usr/bin/env node
// `npm run build`: compile src/ and plugins/ (tsconfig.build.json), then copy what tsc leaves
// out — the HAProxy template, which DEFAULT_TEMPLATE_PATH (src/adapters/haproxy/template.ts)
// finds beside the compiled adapter. Without it `switchyard agent` from dist/ needs `template:`.
//
//   node scripts/build-dist.mjs [--out-dir DIR]   (default: dist)
//
// scripts/build-image.sh builds into its own staging directory with --out-dir, so an image
// build never replaces the dist/ that someone is running.
import { execFileSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** Files tsc does not emit that the compiled code reads at run time, relative to the repository. */
const ASSETS = ['src/adapters/haproxy/templates'];

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { 'out-dir': { type: 'string', default: 'dist' } } });
const outDir = resolve(values['out-dir']);

// The output directory is emptied first, so it must not hold the sources themselves.
if (!relative(outDir, root).startsWith('..')) {
  process.stderr.write(`build-dist: refusing --out-dir ${outDir}: it contains the repository\n`);
  process.exit(2);
}
// Compiled files of sources deleted or renamed since the last build would otherwise ship.
rmSync(outDir, { recursive: true, force: true });

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
try {
  execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', outDir], { stdio: 'inherit' });
} catch {
  process.exit(1); // tsc has printed its diagnostics
}
for (const asset of ASSETS) cpSync(join(root, asset), join(outDir, asset), { recursive: true });
