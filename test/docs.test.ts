/**
 * The documentation in docs/ stays true: its generated parts match what scripts/docs.ts
 * makes from the code today, the README points at every page, and every relative link
 * leads somewhere. Users read these files without the rest of the project's papers, so
 * nothing may send them outside the repository.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { BLOCKS, configReference, generatedDocs, replaceBlock } from '../scripts/docs.js';

const ROOT = new URL('..', import.meta.url).pathname;

async function markdownFiles(): Promise<string[]> {
  const docs = (await readdir(join(ROOT, 'docs'))).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`);
  return ['README.md', ...docs];
}

describe('docs/', () => {
  it('has every generated block as npm run docs writes it', async () => {
    const docs = await generatedDocs(ROOT);
    expect(docs.map((d) => d.file).sort()).toEqual([...new Set(BLOCKS.map((b) => b.file))].sort());
    for (const d of docs) expect(d.current, `${d.file} is stale: run npm run docs`).toBe(d.expected);
  });

  it('lists every configuration key and every command', async () => {
    const config = await readFile(join(ROOT, 'docs/configuration.md'), 'utf8');
    for (const key of ['etcd.endpoints', 'registry.switchyardPrefix', 'haproxy.masterSocket', 'docker.lockWait', 'services.<name>.listen']) {
      expect(config).toContain(`| \`${key}\` |`);
    }
    const commands = await readFile(join(ROOT, 'docs/commands.md'), 'utf8');
    for (const usage of ['help [command]', 'register <service> <instance> <host:port>', 'scale <service> <replicas>', 'render [--diff] [--apply]']) {
      expect(commands).toContain(`| \`${usage}`);
    }
  });

  it('refuses a schema key nobody described, and a description whose key is gone', () => {
    const schema = z.object({ a: z.object({ b: z.string(), c: z.number().int().min(1).max(9).default(3) }) });
    const docs = { a: { text: 'section a' }, 'a.b': { text: 'b' }, 'a.c': { text: 'c' } };
    expect(configReference(schema, docs)).toContain('| `a.c` | integer 1–9 | `3` | c |');
    expect(() => configReference(schema, { a: docs.a, 'a.b': docs['a.b'] })).toThrow(/a\.c: in the schema, not described/);
    expect(() => configReference(schema, { ...docs, 'a.gone': { text: 'x' } })).toThrow(/a\.gone: described .* not in the schema/);
  });

  it('replaces only the text between a block’s markers, and names a missing block', () => {
    const doc = 'before\n<!-- generated:x (npm run docs; edits here are overwritten) -->\nold\n<!-- /generated:x -->\nafter\n';
    expect(replaceBlock(doc, 'f.md', 'x', 'new')).toBe(
      'before\n<!-- generated:x (npm run docs; edits here are overwritten) -->\nnew\n<!-- /generated:x -->\nafter\n',
    );
    expect(() => replaceBlock('no markers', 'f.md', 'x', 'new')).toThrow(/f\.md: no generated block "x"/);
  });

  it('is linked from the README, and only links to files in the repository', async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    for (const page of (await markdownFiles()).filter((f) => f.startsWith('docs/'))) expect(readme).toContain(`](${page})`);
    for (const file of await markdownFiles()) {
      const text = await readFile(join(ROOT, file), 'utf8');
      expect(text, file).not.toMatch(/SPEC\.md|\.\.\/shared/);
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!) || target!.startsWith('#')) continue;
        const path = join(ROOT, dirname(file), target!.split('#')[0]!);
        expect(existsSync(path), `${file} links to ${target}, which does not exist`).toBe(true);
      }
    }
  });
});
