import { readFile } from 'node:fs/promises';
import { isMap, isNode, isScalar, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { suggest } from './suggest.js';

/**
 * Parse YAML text and validate it with a zod schema, reporting every problem as
 * `file:line: message` so `switchyard check` and start-up errors point at the line to fix.
 */
export type YamlResult<T> = { ok: true; value: T } | { ok: false; errors: string[] /** the file does not exist */; missing?: boolean };

export function parseYaml<S extends z.ZodType>(text: string, file: string, schema: S): YamlResult<z.output<S>> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const lineOf = (offset: number | undefined) => (offset === undefined ? 1 : lineCounter.linePos(offset).line);
  if (doc.errors.length > 0) {
    return { ok: false, errors: doc.errors.map((e) => `${file}:${lineOf(e.pos[0])}: ${e.message.split('\n')[0]}`) };
  }
  const parsed = schema.safeParse(doc.toJS() ?? {});
  if (parsed.success) return { ok: true, value: parsed.data };
  const found = parsed.error.issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({
        line: lineOf(keyOffset(doc, issue.path, key) ?? offsetOf(doc, issue.path)),
        text: `${[...issue.path, key].join('.')}: unknown key; ${unknownKeyFix(key, objectKeysAt(schema, issue.path))}`,
      }));
    }
    const where = issue.path.length ? `${issue.path.join('.')}: ` : '';
    return [{ line: lineOf(offsetOf(doc, issue.path)), text: `${where}${issue.message}` }];
  });
  // In file order, as an editor walks them (zod reports unknown keys after the known ones).
  return { ok: false, errors: found.sort((x, y) => x.line - y.line).map((f) => `${file}:${f.line}: ${f.text}`) };
}

function unknownKeyFix(key: string, known: readonly string[]): string {
  const close = suggest(key, known);
  if (close.length > 0) return `did you mean ${close.map((k) => `"${k}"`).join(' or ')}? (rename it)`;
  return known.length > 0 ? `remove it (allowed here: ${known.join(', ')})` : 'remove it';
}

/** Where `key` itself is written in the mapping at `path` (zod reports the mapping, not the key). */
function keyOffset(doc: Document, path: readonly PropertyKey[], key: string): number | undefined {
  const map = path.length ? doc.getIn(path as (string | number)[], true) : doc.contents;
  if (!isMap(map)) return undefined;
  const pair = map.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === key);
  return pair && isNode(pair.key) ? pair.key.range?.[0] : undefined;
}

type SchemaDef = {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  valueType?: z.ZodType;
  element?: z.ZodType;
  options?: readonly z.ZodType[];
  getter?: () => z.ZodType;
};
const defOf = (s: z.ZodType): SchemaDef => (s as unknown as { _zod: { def: SchemaDef } })._zod.def;

/** The schemas under wrappers (optional, default, pipe, lazy…), unions expanded. */
function peel(schema: z.ZodType, depth = 0): z.ZodType[] {
  if (depth > 16) return [];
  const def = defOf(schema);
  // A preprocess is a pipe from a transform: the keys are those of what it feeds.
  const inner = def.innerType ?? (def.in && defOf(def.in).type === 'transform' ? def.out : def.in) ?? def.getter?.();
  if (inner) return peel(inner, depth + 1);
  if (def.type === 'union' && def.options) return def.options.flatMap((o) => peel(o, depth + 1));
  return [schema];
}

/** The keys an object schema at `path` allows, for the "did you mean" of an unknown key. */
function objectKeysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let here = peel(schema);
  for (const segment of path) {
    here = here.flatMap((s) => {
      const def = defOf(s);
      const child = def.type === 'object' ? def.shape?.[String(segment)] : (def.valueType ?? def.element);
      return child ? peel(child) : [];
    });
  }
  return [...new Set(here.flatMap((s) => Object.keys(defOf(s).shape ?? {})))];
}

/** The start offset of the deepest node that exists along `path` (a missing key points at its parent). */
function offsetOf(doc: Document, path: readonly PropertyKey[]): number | undefined {
  for (let i = path.length; i > 0; i--) {
    const node = doc.getIn(path.slice(0, i) as (string | number)[], true);
    if (isNode(node) && node.range) return node.range[0];
  }
  return doc.contents && isNode(doc.contents) ? doc.contents.range?.[0] : undefined;
}

export async function loadYamlFile<S extends z.ZodType>(file: string, schema: S): Promise<YamlResult<z.output<S>>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { ok: false, errors: [`${file}:1: cannot read: ${code ?? String(e)}`], ...(code === 'ENOENT' ? { missing: true } : {}) };
  }
  return parseYaml(text, file, schema);
}

/**
 * Line numbers for paths in a YAML file that was already validated, for errors found later
 * (a plugin's options, checked by the plugin's own schema): `(path) => line`, the nearest
 * existing node along the path. A file that cannot be read or parsed answers line 1.
 */
export async function yamlLineLocator(file: string): Promise<(path: readonly PropertyKey[]) => number> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  return (path) => {
    const offset = doc.errors.length ? undefined : offsetOf(doc, path);
    return offset === undefined ? 1 : lineCounter.linePos(offset).line;
  };
}
