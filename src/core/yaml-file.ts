import { readFile } from 'node:fs/promises';
import { isNode, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';

/**
 * Parse YAML text and validate it with a zod schema, reporting every problem as
 * `file:line: message` so `switchyard check` and start-up errors point at the line to fix.
 */
export type YamlResult<T> = { ok: true; value: T } | { ok: false; errors: string[] };

export function parseYaml<S extends z.ZodType>(text: string, file: string, schema: S): YamlResult<z.output<S>> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const lineOf = (offset: number | undefined) => (offset === undefined ? 1 : lineCounter.linePos(offset).line);
  if (doc.errors.length > 0) {
    return { ok: false, errors: doc.errors.map((e) => `${file}:${lineOf(e.pos[0])}: ${e.message.split('\n')[0]}`) };
  }
  const parsed = schema.safeParse(doc.toJS() ?? {});
  if (parsed.success) return { ok: true, value: parsed.data };
  return {
    ok: false,
    errors: parsed.error.issues.map((issue) => {
      const where = issue.path.length ? ` ${issue.path.join('.')}:` : '';
      return `${file}:${lineOf(offsetOf(doc, issue.path))}:${where} ${issue.message}`;
    }),
  };
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
    return { ok: false, errors: [`${file}:1: cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`] };
  }
  return parseYaml(text, file, schema);
}
