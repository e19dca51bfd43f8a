/**
 * Builds the `api` each plugin factory receives: the facades (writes made outside a command,
 * e.g. in a start hook, are attributed to the plugin), zod, the argument types, errors and
 * reply builders. Everything a plugin needs, so it needs no import from switchyard.
 */
import { z } from 'zod';
import { ERRORS, fail, isSwitchyardError, SwitchyardError, type ErrorCode } from '../core/errors.js';
import type { Facades } from '../core/facades.js';
import { currentCause, withCause } from '../core/feed.js';
import type { Logger } from '../core/log.js';
import { address, duration, instanceName, intArg, serviceName, weightArg } from '../core/names.js';
import { defineCommand, PLUGIN_API_VERSION, type PluginApi, type ReplyBuilders } from '../core/plugin-api.js';
import { ok } from '../core/reply.js';
import { usage } from '../core/usage.js';

export interface PluginApiOptions {
  /** The plugin's name as the loader knows it (its logger, its attribution outside commands). */
  name: string;
  facades: Facades;
  log: Logger;
  /** The plugin's `options` from switchyard.yaml; undefined for built-ins. */
  options?: unknown;
  /** Turns an options mismatch into the error start-up reports (the loader adds file:line). */
  invalidOptions?: (error: z.ZodError) => never;
}

const reply: ReplyBuilders = {
  text: (summary, details) => ok(summary, details?.length ? { details } : {}),
  ok,
  fail: (code, summary, details) => ({ ok: false, code, summary, ...(details?.length ? { details } : {}) }),
  table: (title, header, rows) => ({ ...(title !== undefined ? { title } : {}), table: { header, rows } }),
};

/** Every method of `obj`, run under `cause` when no command's cause is ambient. */
function attributed<T extends object>(obj: T, cause: { by: string; reason: string }): T {
  const out: Record<string, unknown> = {};
  for (const key of new Set([...Object.keys(obj), ...Object.getOwnPropertyNames(Object.getPrototypeOf(obj))])) {
    const v = (obj as Record<string, unknown>)[key];
    if (key === 'constructor') continue;
    out[key] =
      typeof v === 'function'
        ? (...args: unknown[]) => {
            const call = () => (v as (...a: unknown[]) => unknown).apply(obj, args);
            return currentCause() ? call() : withCause(cause, call);
          }
        : v;
  }
  return out as T;
}

export function buildPluginApi(o: PluginApiOptions): PluginApi {
  const cause = { by: o.name, reason: `plugin ${o.name}` };
  const f = o.facades;
  return {
    version: PLUGIN_API_VERSION,
    z,
    defineCommand,
    args: { service: serviceName, instance: instanceName, address, duration, weight: weightArg, int: intArg },
    errors: {
      fail: (code: ErrorCode, message?: string, opts?: { details?: readonly string[] }) => fail(code, message, opts),
      is: (e, code) => isSwitchyardError(e, code),
      codes: Object.keys(ERRORS) as ErrorCode[],
    },
    reply,
    usage,
    options<S extends z.ZodType>(schema: S): z.output<S> {
      const r = schema.safeParse(o.options);
      if (r.success) return r.data;
      if (o.invalidOptions) return o.invalidOptions(r.error);
      throw new SwitchyardError('E_CONFIG', `plugin ${o.name}: invalid options`, {
        details: r.error.issues.map((i) => `${i.path.join('.') || 'options'}: ${i.message}`),
      });
    },
    log: o.log.child({ plugin: o.name }),
    registry: attributed(f.registry, cause),
    rotation: attributed(f.rotation, cause),
    orchestration: attributed(f.orchestration, cause),
    routing: f.routing,
    feed: f.feed,
    history: f.history,
  };
}
