/**
 * The core owns the interfaces it uses and depends on nothing above it: adapters, the app
 * wiring, plugins and processes all import the core, never the reverse. A core module that
 * reached up would tie the command semantics to one transport or one backend.
 */
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CORE = join(ROOT, 'src', 'core');

async function sources(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(entries.map((e) => (e.isDirectory() ? sources(join(dir, e.name)) : Promise.resolve([join(dir, e.name)]))));
  return nested.flat().filter((f) => f.endsWith('.ts'));
}

/** Every module specifier of static imports, re-exports and dynamic imports. */
function specifiers(text: string): string[] {
  const found: string[] = [];
  for (const re of [/\bfrom\s+['"]([^'"]+)['"]/g, /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g, /^\s*import\s+['"]([^'"]+)['"]/gm]) {
    for (const m of text.matchAll(re)) found.push(m[1]!);
  }
  return found;
}

describe('src/core imports nothing above it', () => {
  it('every relative import of a core module stays inside src/core', async () => {
    const files = await sources(CORE);
    expect(files.length).toBeGreaterThan(20);
    const escapes: string[] = [];
    for (const file of files) {
      for (const spec of specifiers(await readFile(file, 'utf8'))) {
        if (!spec.startsWith('.')) continue;
        const target = resolve(dirname(file), spec);
        if (relative(CORE, target).startsWith('..')) escapes.push(`${relative(ROOT, file)} → ${spec}`);
      }
    }
    expect(escapes).toEqual([]);
  });

  it('the check sees an escape when there is one', () => {
    const file = join(CORE, 'router.ts');
    const target = resolve(dirname(file), specifiers("import { x } from '../adapters/etcd/registry.js';")[0]!);
    expect(relative(CORE, target).startsWith('..')).toBe(true);
  });
});
