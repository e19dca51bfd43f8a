import { basename, dirname, extname, resolve } from 'node:path';
import type { PluginEntry } from '../config/schema.js';
import { isSwitchyardError, SwitchyardError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import type { CommandContext, CommandDef, Plugin, PluginApi, PluginFactory } from '../core/plugin-api.js';
import { settledWithin } from '../core/shutdown.js';
import { yamlLineLocator } from '../core/yaml-file.js';
import { importPluginModule, resolvePluginModule } from './plugin-module.js';
import { apiVersionProblem, pluginShapeProblems } from './plugin-shape.js';

/** What the wiring hands each plugin's factory: the facades and helpers, named for that plugin. */
export type MakePluginApi = (plugin: { name: string; options: unknown; builtin: boolean }) => PluginApi;

export interface LoadPluginsOptions {
  /** Built-in factories, in load order (they load before every `plugins:` entry). */
  builtins: readonly PluginFactory[];
  /** The `plugins:` entries of switchyard.yaml, in order (as loadConfig returns them: each knows its file). */
  entries: readonly PluginEntry[];
  /** The config file, for entries that do not say which file they come from (built by hand in a test). */
  configPath?: string;
  makeApi: MakePluginApi;
  log: Logger;
}

export interface LoadedPlugins {
  /** Built-ins first, then the entries, in order: what the router and the ACL's known commands take. */
  plugins: Plugin[];
  /** Each command's origin, e.g. `plugin maintenance (./plugins/maintenance/index.js)`. */
  origins: ReadonlyMap<string, string>;
  /** Every plugin's start hook, once, in load order; a failure names the plugin. */
  start(): Promise<void>;
  /** Stop hooks in reverse load order, all within `budgetMs`; failures are logged, never thrown. */
  stop(budgetMs?: number): Promise<void>;
}

/** What plugins' stop hooks may spend together: inside the 5 s shutdown, beside etcd's own. */
export const PLUGIN_STOP_BUDGET_MS = 1500;

/**
 * Load built-in plugins, then the `plugins:` entries of switchyard.yaml (hubot/probot
 * style: a module whose default export is `(api, options) => Plugin`). Everything found
 * wrong — a module that does not load, options its schema refuses, a malformed plugin, an
 * API range it does not accept, a command name already taken — stops start-up (and
 * `switchyard check`) with the entry's `file:line`; nothing is started before all load.
 */
export async function loadPlugins(opts: LoadPluginsOptions): Promise<LoadedPlugins> {
  const plugins: Plugin[] = [];
  const origins = new Map<string, string>();
  const pluginOrigins = new Map<string, string>();

  const admit = (plugin: Plugin, origin: string, where?: string) => {
    const refuse = (message: string) => {
      throw new SwitchyardError('E_CONFIG', message, {
        details: where ? [`${where}: remove this entry, or rename the command in the plugin`] : [],
      });
    };
    const sameName = pluginOrigins.get(plugin.name);
    if (sameName) refuse(`${origin} has the same name as ${sameName}`);
    for (const cmd of plugin.commands) {
      const taken = origins.get(cmd.name);
      if (taken) refuse(`command "${cmd.name}" from ${origin} clashes with ${taken}`);
    }
    for (const cmd of plugin.commands) origins.set(cmd.name, origin);
    pluginOrigins.set(plugin.name, origin);
    plugins.push(plugin);
  };

  for (const [i, factory] of opts.builtins.entries()) {
    const name = factory.name || `built-in #${i + 1}`;
    const api = withOptions(
      opts.makeApi({ name, options: {}, builtin: true }),
      {},
      () => `built-in plugin ${name}`,
      () => 'built-in',
    );
    const plugin = await factory(api, {});
    const problems = pluginShapeProblems(plugin);
    if (problems.length) throw new SwitchyardError('E_INTERNAL', `built-in plugin ${name} is malformed`, { details: problems });
    admit(plugin, `built-in plugin ${plugin.name}`);
  }

  const locators = new Map<string, (path: readonly PropertyKey[]) => number>();
  for (const [n, entry] of opts.entries.entries()) {
    const configPath = entry.from?.file ?? opts.configPath;
    if (configPath === undefined) throw new SwitchyardError('E_INTERNAL', `plugins.${n} (${entry.module}): no config file to resolve it from`);
    const i = entry.from?.index ?? n;
    const configDir = dirname(resolve(configPath));
    const lineOf = locators.get(configPath) ?? (await yamlLineLocator(configPath));
    locators.set(configPath, lineOf);
    const at = `${configPath}:${lineOf(['plugins', i])}`;
    const where = `${at}: plugins.${i} (${entry.module})`;
    const invalid = (code: 'E_CONFIG' | 'E_PLUGIN', problem: string, details: string[] = []) =>
      new SwitchyardError(code, `invalid configuration in ${configPath}`, { details: [`${where}: ${problem}`, ...details.map((d) => `  ${d}`)] });

    let factory: unknown;
    try {
      const file = resolvePluginModule(entry.module, configDir);
      factory = ((await importPluginModule(file)) as { default?: unknown }).default;
    } catch (err) {
      throw invalid('E_CONFIG', `cannot load the module: ${firstLine(err)}`);
    }
    if (typeof factory !== 'function') {
      throw invalid('E_PLUGIN', 'its default export is not a plugin factory: export default (api, options) => ({ name, commands })');
    }
    const options = entry.options ?? {};
    const guess = nameFromSpecifier(entry.module);
    const api = withOptions(
      opts.makeApi({ name: guess, options, builtin: false }),
      options,
      () => `plugins.${i} (${entry.module})`,
      (path) => `${configPath}:${lineOf(['plugins', i, 'options', ...path])}`,
    );
    let plugin: Plugin;
    try {
      plugin = await (factory as PluginFactory)(api, options);
    } catch (err) {
      // api.options() refusing the block is already a config error with its lines.
      if (isSwitchyardError(err)) throw err;
      opts.log.error({ err, module: entry.module }, 'plugin factory failed');
      throw invalid('E_PLUGIN', `the plugin failed to load: ${firstLine(err)}`);
    }
    const problems = pluginShapeProblems(plugin);
    if (problems.length) throw invalid('E_PLUGIN', 'what its factory returned is not a plugin', problems);
    const tooNew = apiVersionProblem(plugin);
    if (tooNew) throw invalid('E_PLUGIN', `plugin ${plugin.name} refused: ${tooNew}`, ['upgrade switchyard, or use a version of the plugin made for this API']);
    const origin = `plugin ${plugin.name} (${entry.module})`;
    admit(guarded(plugin, opts.log), origin, at);
  }

  let started = false;
  let stopped = false;
  // Only plugins whose start hook ran (or that have none) get their stop hook called.
  const running: Plugin[] = [];
  return {
    plugins,
    origins,
    async start() {
      if (started) return;
      started = true;
      for (const plugin of plugins) {
        try {
          await plugin.start?.();
          running.push(plugin);
        } catch (err) {
          if (isSwitchyardError(err)) throw err;
          opts.log.error({ err, plugin: plugin.name }, 'plugin start hook failed');
          throw new SwitchyardError('E_PLUGIN', `plugin ${plugin.name} failed to start: ${firstLine(err)}`);
        }
      }
    },
    async stop(budgetMs = PLUGIN_STOP_BUDGET_MS) {
      if (stopped || !started) return;
      stopped = true;
      const until = Date.now() + budgetMs;
      for (const plugin of [...running].reverse()) {
        if (!plugin.stop) continue;
        const left = until - Date.now();
        const done = settledWithin(
          Promise.resolve()
            .then(() => plugin.stop?.())
            .then(
              () => true,
              (err: unknown) => {
                opts.log.warn({ err, plugin: plugin.name }, 'plugin stop hook failed');
                return true;
              },
            ),
          Math.max(0, left),
        );
        if ((await done) === undefined) opts.log.warn({ plugin: plugin.name, budgetMs }, 'plugin stop hook did not finish within the shutdown budget');
      }
    },
  };
}

/**
 * The API with `options(schema)` bound to this entry: a refusal is a config error whose
 * lines point into the entry's `options:` block.
 */
function withOptions(api: PluginApi, raw: unknown, label: () => string, lineOf: (path: PropertyKey[]) => string): PluginApi {
  return {
    ...api,
    options: (schema) => {
      const parsed = schema.safeParse(raw);
      if (parsed.success) return parsed.data;
      const details = parsed.error.issues.map((issue) => {
        const path = issue.path.length ? `.${issue.path.map(String).join('.')}` : '';
        return `${lineOf(issue.path)}: ${label()}: options${path}: ${issue.message}`;
      });
      throw new SwitchyardError('E_CONFIG', `invalid plugin options for ${label()}`, { details });
    },
  };
}

/**
 * External commands, wrapped so that an uncoded exception becomes E_PLUGIN naming the plugin
 * (its message may hold anything, so only the log gets it), and a bad `timeoutMs` function
 * falls back to the default instead of failing the command.
 */
function guarded(plugin: Plugin, log: Logger): Plugin {
  const wrap =
    <A extends unknown[], R>(cmd: CommandDef, what: string, fn: (ctx: CommandContext, ...a: A) => Promise<R>) =>
    async (ctx: CommandContext, ...a: A): Promise<R> => {
      try {
        return await fn(ctx, ...a);
      } catch (err) {
        if (isSwitchyardError(err)) throw err;
        (ctx.log ?? log).error({ err, plugin: plugin.name, command: cmd.name }, `plugin ${what} threw`);
        throw new SwitchyardError('E_PLUGIN', `plugin ${plugin.name} failed running ${cmd.name} (request ${ctx.requestId}); details are in the bot's log`);
      }
    };
  const commands = plugin.commands.map((cmd): CommandDef => {
    const timeout = cmd.timeoutMs;
    return {
      name: cmd.name,
      summary: cmd.summary,
      args: cmd.args,
      positionals: cmd.positionals ?? [],
      ...(cmd.serviceArg !== undefined ? { serviceArg: cmd.serviceArg } : {}),
      ...(timeout !== undefined
        ? {
            timeoutMs:
              typeof timeout === 'function'
                ? (args: unknown) => {
                    try {
                      return timeout(args as never);
                    } catch {
                      return Number.NaN;
                    }
                  }
                : timeout,
          }
        : {}),
      ...(cmd.needsConfirmation ? { needsConfirmation: wrap(cmd, 'confirmation check', (ctx, args) => cmd.needsConfirmation!(ctx, args)) } : {}),
      handler: wrap(cmd, 'handler', (ctx, args) => cmd.handler(ctx, args)),
    };
  });
  // Hooks are called on the plugin object itself, so a plugin written as a class keeps `this`.
  return {
    name: plugin.name,
    ...(plugin.apiVersion !== undefined ? { apiVersion: plugin.apiVersion } : {}),
    commands,
    ...(plugin.start ? { start: () => plugin.start?.() } : {}),
    ...(plugin.stop ? { stop: () => plugin.stop?.() } : {}),
  };
}

/** `./plugins/maintenance/index.js` → maintenance; `@acme/flush` → flush: a name to log under until the plugin names itself. */
function nameFromSpecifier(spec: string): string {
  const base = basename(spec, extname(spec));
  return base === 'index' ? basename(dirname(spec)) || base : base.replace(/^switchyard-plugin-/, '');
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}
