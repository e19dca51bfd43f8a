/**
 * The built-in plugins are written against the public plugin API only: no plugin imports
 * switchyard's internals or another plugin, so what they need is proven to be in `api`.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const PLUGINS = fileURLToPath(new URL('../plugins/', import.meta.url));
const IMPORT_RE = /^\s*(import|export)\s+(type\s+)?[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm;

/** Every import of a file as `[specifier, typeOnly]`. */
function importsOf(source: string): [string, boolean][] {
  return [...source.matchAll(IMPORT_RE)].map((m) => [m[3] ?? m[4]!, Boolean(m[2])]);
}

/** Why an import is not allowed in a plugin, or undefined. */
function forbidden([spec, typeOnly]: [string, boolean]): string | undefined {
  if (!spec.startsWith('.')) return undefined; // third-party packages (zod is in api.z; diff is its own)
  if (spec === '../src/plugin.js') return typeOnly ? undefined : 'the public entry may be imported for types only (import type)';
  return spec.startsWith('./') ? 'a plugin may not import another plugin' : 'a plugin may import nothing from switchyard but `import type` from src/plugin.ts';
}

describe('built-in plugins import only the public API', () => {
  it('the rule catches what it must', () => {
    const bad = importsOf(
      [
        "import { z } from 'zod';",
        "import { fail } from '../src/core/errors.js';",
        "import { lastReadyWarning } from './register.js';",
        "import { ok } from '../src/plugin.js';",
        "import type { Plugin } from '../src/plugin.js';",
        "const d = await import('../src/agent/format.js');",
      ].join('\n'),
    ).map(forbidden);
    expect(bad).toEqual([
      undefined,
      expect.stringContaining('nothing from switchyard'),
      expect.stringContaining('another plugin'),
      expect.stringContaining('types only'),
      undefined,
      expect.stringContaining('nothing from switchyard'),
    ]);
  });

  it('no plugin in plugins/ breaks it', async () => {
    const files = (await readdir(PLUGINS)).filter((f) => f.endsWith('.ts'));
    expect(files).toEqual(expect.arrayContaining(['help.ts', 'status.ts', 'register.ts', 'weight.ts', 'scale.ts', 'drain.ts', 'render.ts']));
    const problems: string[] = [];
    for (const f of files) {
      const imports = importsOf(await readFile(join(PLUGINS, f), 'utf8'));
      expect(imports.length, f).toBeGreaterThan(0);
      for (const imp of imports) {
        const why = forbidden(imp);
        if (why) problems.push(`plugins/${f}: ${imp[0]}: ${why}`);
      }
    }
    expect(problems).toEqual([]);
  });
});
