import type { z } from 'zod';
import type { CommandDef } from './plugin-api.js';
import { fieldInfo } from './schema-info.js';

/** `register <service> <instance> <host:port> [--ttl 30s] [--weight N]`, from the schema. */
export function usage(cmd: CommandDef): string {
  const shape = cmd.args.shape as Record<string, z.ZodType>;
  const parts: string[] = [cmd.name];
  for (const name of cmd.positionals) {
    const info = fieldInfo(name, shape[name]!);
    parts.push(info.optional ? `[${info.placeholder}]` : `<${info.placeholder}>`);
  }
  for (const [name, field] of Object.entries(shape)) {
    if (cmd.positionals.includes(name)) continue;
    const info = fieldInfo(name, field);
    const flag = info.boolean ? `--${name}` : `--${name} ${info.placeholder}`;
    parts.push(info.optional ? `[${flag}]` : flag);
  }
  return parts.join(' ');
}
