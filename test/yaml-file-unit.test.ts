/**
 * YAML files read against a zod schema, reported as `file:line: message`: the line each kind
 * of problem points at, the hint for an unknown key (through wrappers, unions, records, lists
 * and lazy schemas), the order of the report, and reading files that are missing or are not
 * files. acl.yaml and switchyard.yaml tests go through this with their real schemas; here each
 * schema is built in its test (mutation testing, docs/TESTING.md).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadYamlFile, parseYaml, yamlLineLocator } from '../src/core/yaml-file.js';

const errorsOf = <T>(r: { ok: true; value: T } | { ok: false; errors: string[] }) => (r.ok ? [] : r.errors);

describe('parseYaml: where each problem points', () => {
  it('a YAML syntax error: its line and the first line of its message', () => {
    const errors = errorsOf(parseYaml('a: 1\nb: [1, 2\nc: 3\n', 'f.yaml', z.unknown()));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^f\.yaml:[23]: [^\n]+$/);
    // The parser's own first line, without its "at line…, column…" (the line is ours).
    expect(errorsOf(parseYaml('a: 1\na: 2\n', 'f.yaml', z.unknown()))).toEqual(['f.yaml:2: Map keys must be unique']);
  });

  it('an empty file is an empty mapping', () => {
    expect(parseYaml('', 'f.yaml', z.object({ a: z.number().default(7) }))).toEqual({ ok: true, value: { a: 7 } });
  });

  it('a bad value points at its line; a missing key at its parent; a problem of the whole file has no path', () => {
    const schema = z.object({ top: z.number(), inner: z.object({ need: z.string(), x: z.number() }) });
    expect(errorsOf(parseYaml('top: 1\ninner:\n  x: "no"\n', 'f.yaml', schema))).toEqual([
      'f.yaml:3: inner.need: Invalid input: expected string, received undefined',
      'f.yaml:3: inner.x: Invalid input: expected number, received string',
    ]);
    const whole = z.object({ a: z.number() }).refine((v) => v.a > 1, 'a must be more than 1');
    expect(errorsOf(parseYaml('\n\na: 1\n', 'f.yaml', whole))).toEqual(['f.yaml:3: a must be more than 1']);
  });

  it('lists problems in file order, unknown keys at their own line', () => {
    const schema = z.strictObject({ alpha: z.number(), omega: z.number() });
    // zod reports the unknown key after the bad value; the report follows the file.
    expect(errorsOf(parseYaml('alpah: 1\nomega: x\nalpha: 2\n', 'f.yaml', schema))).toEqual([
      'f.yaml:1: alpah: unknown key; did you mean "alpha"? (rename it)',
      'f.yaml:2: omega: Invalid input: expected number, received string',
    ]);
  });
});

describe('parseYaml: the hint for an unknown key', () => {
  it('names every close key, else lists what is allowed, else says to remove it', () => {
    const two = z.strictObject({ port: z.number().optional(), ports: z.number().optional(), name: z.string().optional() });
    expect(errorsOf(parseYaml('prt: 1\n', 'f.yaml', two))).toEqual(['f.yaml:1: prt: unknown key; did you mean "port" or "ports"? (rename it)']);
    expect(errorsOf(parseYaml('colour: red\n', 'f.yaml', two))).toEqual(['f.yaml:1: colour: unknown key; remove it (allowed here: port, ports, name)']);
    expect(errorsOf(parseYaml('x: 1\n', 'f.yaml', z.strictObject({})))).toEqual(['f.yaml:1: x: unknown key; remove it']);
  });

  it('finds the allowed keys through optional, default, lazy and preprocess wrappers', () => {
    const leaf = z.strictObject({ listen: z.string().optional() });
    const schema = z.strictObject({
      opt: leaf.optional(),
      def: leaf.default({}),
      lazy: z.lazy(() => leaf),
      pre: z.preprocess((v) => v ?? {}, leaf),
    });
    const text = 'opt:\n  lisen: a\ndef:\n  lisen: a\nlazy:\n  lisen: a\npre:\n  lisen: a\n';
    const errors = errorsOf(parseYaml(text, 'f.yaml', schema));
    for (const [line, path] of [
      [2, 'opt'],
      [4, 'def'],
      [6, 'lazy'],
      [8, 'pre'],
    ] as const) {
      expect(errors).toContain(`f.yaml:${line}: ${path}.lisen: unknown key; did you mean "listen"? (rename it)`);
    }
    expect(errors).toHaveLength(4);
  });

  it('finds the allowed keys through a transform, and in every branch of a union', () => {
    const leaf = z.strictObject({ listen: z.string().optional() });
    expect(errorsOf(parseYaml('t:\n  lisen: a\n', 'f.yaml', z.strictObject({ t: leaf.transform((v) => v) })))).toEqual([
      'f.yaml:2: t.lisen: unknown key; did you mean "listen"? (rename it)',
    ]);
    const tcp = z.strictObject({ kind: z.literal('tcp'), port: z.number() });
    const unix = z.strictObject({ kind: z.literal('unix'), path: z.string() });
    const text = 'x:\n  kind: tcp\n  port: 1\n  pth: y\n';
    for (const either of [z.discriminatedUnion('kind', [tcp, unix]), z.union([tcp, unix])]) {
      expect(errorsOf(parseYaml(text, 'f.yaml', z.strictObject({ x: either })))).toEqual(['f.yaml:4: x.pth: unknown key; did you mean "path"? (rename it)']);
    }
  });

  it('walks into records and lists by their value and element schemas', () => {
    const svc = z.strictObject({ image: z.string() });
    const schema = z.strictObject({ services: z.record(z.string(), svc), rules: z.array(svc) });
    const text = 'services:\n  web:\n    imge: x\nrules:\n  - image: y\n  - imag: z\n';
    expect(errorsOf(parseYaml(text, 'f.yaml', schema))).toEqual([
      'f.yaml:3: services.web.image: Invalid input: expected string, received undefined',
      'f.yaml:3: services.web.imge: unknown key; did you mean "image"? (rename it)',
      'f.yaml:6: rules.1.image: Invalid input: expected string, received undefined',
      'f.yaml:6: rules.1.imag: unknown key; did you mean "image"? (rename it)',
    ]);
  });
});

describe('reading files', () => {
  it('a missing file is flagged as missing; a directory cannot be read and is not', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'switchyard-yaml-unit-'));
    try {
      const gone = join(dir, 'gone.yaml');
      expect(await loadYamlFile(gone, z.unknown())).toEqual({ ok: false, errors: [`${gone}:1: cannot read: ENOENT`], missing: true });
      expect(await loadYamlFile(dir, z.unknown())).toEqual({ ok: false, errors: [`${dir}:1: cannot read: EISDIR`] });
      const file = join(dir, 'ok.yaml');
      await writeFile(file, 'a: 1\n');
      expect(await loadYamlFile(file, z.object({ a: z.number() }))).toEqual({ ok: true, value: { a: 1 } });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('yamlLineLocator: the line of a path, of its nearest parent, and 1 when the file is unreadable or broken', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'switchyard-yaml-unit-'));
    try {
      const file = join(dir, 'plugins.yaml');
      await writeFile(file, 'plugins:\n  - name: a\n    options:\n      depth: 3\n');
      const line = await yamlLineLocator(file);
      expect(line(['plugins', 0, 'options', 'depth'])).toBe(4);
      expect(line(['plugins', 0, 'missing', 'deeper'])).toBe(2);
      expect(line([])).toBe(1);
      expect((await yamlLineLocator(join(dir, 'gone.yaml')))(['plugins'])).toBe(1);
      const broken = join(dir, 'broken.yaml');
      await writeFile(broken, '\n\nplugins: [1, 2\n');
      expect((await yamlLineLocator(broken))(['plugins'])).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
