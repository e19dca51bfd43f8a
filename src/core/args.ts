import type { z } from 'zod';
import { SwitchyardError } from './errors.js';
import type { CommandDef } from './plugin-api.js';
import { fieldInfo } from './schema-info.js';
import { usage } from './usage.js';

/** Flags the core understands for every command (they never reach plugin schemas). */
export const GLOBAL_FLAGS = ['yes'] as const;

/** `--yes` alone means yes; with a value, only these spellings decide either way. */
const YES_VALUES = new Map([
  ['true', true],
  ['false', false],
  ['no', false],
]);

export interface BoundArgs {
  args: Record<string, unknown>;
  yes: boolean;
}

/**
 * Bind words to a command's schema: positionals in order, `--flag value`, `--flag=value`,
 * boolean `--flag`. Then validate with zod and turn its issues into one readable error.
 */
export function bindArgs(cmd: CommandDef, words: readonly string[]): BoundArgs {
  const shape = cmd.args.shape as Record<string, z.ZodType>;
  const problems: string[] = [];
  const raw: Record<string, unknown> = {};
  const positionals: string[] = [];
  let yes = false;

  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (!w.startsWith('--') || w === '--') {
      positionals.push(w);
      continue;
    }
    const eq = w.indexOf('=');
    const name = w.slice(2, eq < 0 ? undefined : eq);
    if (name === 'yes') {
      const value = eq < 0 ? 'true' : w.slice(eq + 1).toLowerCase();
      // `--yes=false` must never count as consent, and a typo must not guess either way.
      const decided = YES_VALUES.get(value);
      if (decided !== undefined) yes = decided;
      else problems.push(`--yes="${w.slice(eq + 1)}": write --yes (or --yes=true) to confirm, --yes=false or --yes=no not to`);
      continue;
    }
    const field = shape[name];
    if (!field || cmd.positionals.includes(name)) {
      problems.push(`unknown flag --${name}`);
      continue;
    }
    if (name in raw) {
      problems.push(`--${name} given twice`);
      continue;
    }
    if (fieldInfo(name, field).boolean) {
      if (eq >= 0) problems.push(`--${name} takes no value`);
      raw[name] = true;
      continue;
    }
    if (eq >= 0) raw[name] = w.slice(eq + 1);
    else if (i + 1 < words.length && !words[i + 1]!.startsWith('--')) raw[name] = words[++i];
    else problems.push(`--${name} needs a value (${fieldInfo(name, field).placeholder})`);
  }

  if (positionals.length > cmd.positionals.length) {
    problems.push(
      `too many arguments: ${positionals
        .slice(cmd.positionals.length)
        .map((p) => `"${p}"`)
        .join(' ')}`,
    );
  }
  cmd.positionals.forEach((name, idx) => {
    if (idx < positionals.length) raw[name] = positionals[idx];
  });

  if (problems.length === 0) {
    const parsed = cmd.args.safeParse(raw);
    if (parsed.success) return { args: parsed.data as Record<string, unknown>, yes };
    for (const issue of parsed.error.issues) {
      // A check of the arguments together (a plugin's `.refine` on the object: "give --a or
      // --b") names no field: its own message is the problem, not "missing --".
      if (issue.path.length === 0) {
        problems.push(issue.message);
        continue;
      }
      const key = String(issue.path[0]);
      const label = cmd.positionals.includes(key) ? `<${fieldInfo(key, shape[key]!).placeholder}>` : `--${key}`;
      const missing = raw[key] === undefined;
      problems.push(missing ? `missing ${label}` : `${label} "${String(raw[key])}": ${issue.message}`);
    }
  }
  throw new SwitchyardError('E_BAD_ARGS', `${cmd.name}: ${problems.join('; ')}`, { details: [`usage: ${usage(cmd)}`] });
}
