/**
 * The built-in plugins, in load order (help lists commands in this order). Each is written
 * against the public plugin API only, like a plugin from outside the repository; each
 * factory's function name is the plugin's name.
 */
import drain from '../../plugins/drain.js';
import feed from '../../plugins/feed.js';
import help from '../../plugins/help.js';
import history from '../../plugins/history.js';
import register from '../../plugins/register.js';
import render from '../../plugins/render.js';
import scale from '../../plugins/scale.js';
import status from '../../plugins/status.js';
import weight from '../../plugins/weight.js';
import type { Facades } from '../core/facades.js';
import type { Logger } from '../core/log.js';
import type { Plugin, PluginApi } from '../core/plugin-api.js';
import { buildPluginApi } from './plugin-api.js';

/** Built-ins take no options and build their commands synchronously. */
export type BuiltinFactory = (api: PluginApi) => Plugin;

export const BUILTIN_PLUGINS: readonly BuiltinFactory[] = [help, status, register, weight, scale, drain, render, history, feed];

/** What hands each plugin its API (the plugin loader's `makeApi`). */
export const makePluginApi =
  (facades: Facades, log: Logger) =>
  (plugin: { name: string; options?: unknown }): PluginApi =>
    buildPluginApi({ name: plugin.name, facades, log, options: plugin.options });

/** Every built-in, synchronously: for tests and tools that need no `plugins:` entries. */
export function loadBuiltinPlugins(o: { facades: Facades; log: Logger }): Plugin[] {
  const makeApi = makePluginApi(o.facades, o.log);
  return BUILTIN_PLUGINS.map((factory) => factory(makeApi({ name: factory.name })));
}
