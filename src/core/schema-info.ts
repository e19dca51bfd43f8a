import type { z } from 'zod';

/**
 * Read what usage and flag parsing need from a zod 4 field: optional or not, boolean or
 * not, and its placeholder (the field's description). Wrappers are peeled so
 * `duration.optional()` still shows its placeholder.
 */
export interface FieldInfo {
  optional: boolean;
  boolean: boolean;
  placeholder: string;
}

type AnyDef = { type: string; innerType?: z.ZodType; in?: z.ZodType };

export function fieldInfo(name: string, field: z.ZodType): FieldInfo {
  let optional = false;
  let description: string | undefined = field.description;
  let cur: z.ZodType | undefined = field;
  let isBool = false;
  for (let depth = 0; cur && depth < 8; depth++) {
    description ??= cur.description;
    const def: AnyDef = (cur as unknown as { _zod: { def: AnyDef } })._zod.def;
    if (def.type === 'optional' || def.type === 'default') optional = true;
    if (def.type === 'boolean') isBool = true;
    cur = def.innerType ?? def.in;
  }
  return { optional, boolean: isBool, placeholder: description ?? name };
}
