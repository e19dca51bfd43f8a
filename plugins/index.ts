import type { PluginFactory } from '../src/core/plugin.js';
import drainPlugin from './drain.js';
import helpPlugin from './help.js';
import registerPlugin from './register.js';
import renderPlugin from './render.js';
import scalePlugin from './scale.js';
import statusPlugin from './status.js';

/** Plugins in load order; each is a plain function returning its commands. */
export const pluginFactories: readonly PluginFactory[] = [
  helpPlugin,
  statusPlugin,
  registerPlugin,
  scalePlugin,
  // HAProxy (issue 3)
  drainPlugin,
  renderPlugin,
];

export const loadPlugins = () => pluginFactories.map((f) => f());
