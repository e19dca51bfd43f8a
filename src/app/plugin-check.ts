import type { Config } from '../config/schema.js';
import { SwitchyardError } from '../core/errors.js';
import type { Facades } from '../core/facades.js';
import type { Logger } from '../core/log.js';
import { BUILTIN_PLUGINS, makePluginApi } from './builtin-plugins.js';
import { loadPlugins, type LoadedPlugins } from './plugin-loader.js';

/**
 * `switchyard check` loads every plugin the way start-up does (options, shapes, API range,
 * name clashes) but connects to nothing: a factory that reaches for the registry while
 * loading, rather than in a command or its start hook, is told so.
 */
export function checkPlugins(config: Config, configPath: string, log: Logger): Promise<LoadedPlugins> {
  return loadPlugins({ builtins: BUILTIN_PLUGINS, entries: config.plugins, configPath, makeApi: makePluginApi(offlineFacades(), log), log });
}

/**
 * Facades that answer every call with E_UNAVAILABLE. A Proxy rather than a list of methods,
 * so that it follows the facades as they grow; `local` stays undefined (no agent here) and
 * `then` too (so awaiting a facade does not call it).
 */
function offline<T extends object>(what: string): T {
  return new Proxy({} as T, {
    get: (_, key) =>
      typeof key !== 'string' || key === 'then' || key === 'local'
        ? undefined
        : () => {
            throw new SwitchyardError('E_UNAVAILABLE', `${what} is not reachable while plugins load (use it in a command or in start())`);
          },
  });
}

export function offlineFacades(): Facades {
  const feedOffline = offline<Facades['feed']>('the feed');
  return {
    registry: offline('the registry'),
    rotation: offline('rotation'),
    orchestration: offline('orchestration'),
    routing: offline('routing'),
    feed: { publish: () => {}, mute: (...a) => feedOffline.mute(...a), unmute: (...a) => feedOffline.unmute(...a) },
    history: offline('the change history'),
  };
}
