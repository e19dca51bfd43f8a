import semver from 'semver';
import { z } from 'zod';
import { PLUGIN_API_VERSION, type Plugin } from '../core/plugin-api.js';

const fn = (what: string) => z.custom<(...a: never[]) => unknown>((v) => typeof v === 'function', `${what} must be a function`);

/** Command names are the first word typed in chat, which the router lower-cases. */
const COMMAND_NAME_RE = /^[a-z][a-z0-9_-]{0,31}$/;
const PLUGIN_NAME_RE = /^[a-z0-9][a-z0-9_.-]{0,62}$/;

const commandShape = z
  .object({
    name: z.string().regex(COMMAND_NAME_RE, 'must be lower case, start with a letter and hold only a-z 0-9 _ - (at most 32)'),
    summary: z.string().min(1, 'must say in a few words what the command does (help lists it)'),
    // Only the zod instance handed out as api.z builds schemas the router can read usage from.
    args: z.custom<z.ZodObject>((v) => v instanceof z.ZodObject, 'must be a zod object built with api.z.object({...})'),
    positionals: z.array(z.string()).default([]),
    serviceArg: z.string().optional(),
    timeoutMs: z.union([z.number().int().positive().max(3_600_000), fn('timeoutMs')]).optional(),
    needsConfirmation: fn('needsConfirmation').optional(),
    handler: fn('handler'),
  })
  .superRefine((c, ctx) => {
    const keys = Object.keys(c.args.shape);
    for (const p of c.positionals) {
      if (!keys.includes(p)) ctx.addIssue({ code: 'custom', path: ['positionals'], message: `"${p}" is not a key of args (${keys.join(', ') || 'none'})` });
    }
    if (c.serviceArg !== undefined && !keys.includes(c.serviceArg)) {
      ctx.addIssue({ code: 'custom', path: ['serviceArg'], message: `"${c.serviceArg}" is not a key of args (${keys.join(', ') || 'none'})` });
    }
  });

const pluginShape = z.object({
  name: z.string().regex(PLUGIN_NAME_RE, 'must match ^[a-z0-9][a-z0-9_.-]{0,62}$'),
  apiVersion: z
    .string()
    .refine((r) => semver.validRange(r) !== null, 'must be a semver range such as "^1.0.0"')
    .optional(),
  commands: z.array(commandShape),
  start: fn('start').optional(),
  stop: fn('stop').optional(),
});

/**
 * What is wrong with what a factory returned, as lines ("commands.0.handler: …"), or none.
 * The plugin object itself is kept as written (methods, `this`); this only checks it.
 */
export function pluginShapeProblems(value: unknown): string[] {
  const parsed = pluginShape.safeParse(value);
  if (parsed.success) return [];
  return parsed.error.issues.map((i) => `${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message}`);
}

/** Why this plugin cannot run on this API (its `apiVersion` range excludes PLUGIN_API_VERSION), or undefined. */
export function apiVersionProblem(plugin: Pick<Plugin, 'apiVersion'>, version = PLUGIN_API_VERSION): string | undefined {
  if (plugin.apiVersion === undefined || semver.satisfies(version, plugin.apiVersion)) return undefined;
  return `it was written for plugin API ${plugin.apiVersion}, and this switchyard provides ${version}`;
}
