import type { PluginFactory } from '../src/core/plugin.js';
import helpPlugin from './help.js';
import registerPlugin from './register.js';
import statusPlugin from './status.js';

/** Plugins in load order; each is a plain function returning its commands. */
export const pluginFactories: readonly PluginFactory[] = [helpPlugin, statusPlugin, registerPlugin];

export const loadPlugins = () => pluginFactories.map((f) => f());
