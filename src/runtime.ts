import { loadPlugins } from '../plugins/index.js';
import { createEtcdRegistry } from './adapters/etcd/registry.js';
import type { Config } from './config/schema.js';
import type { Secrets } from './config/load.js';
import { AclStore } from './core/acl-store.js';
import type { FeedSink } from './core/feed.js';
import type { Logger } from './core/log.js';
import { createMetrics, type Metrics } from './core/metrics.js';
import type { Plugin } from './core/plugin.js';
import type { Registry } from './core/registry.js';
import { Router } from './core/router.js';

/**
 * Every command name the SPEC defines. acl.yaml may name commands whose plugin is not
 * loaded here (yet); a name outside this list is a typo that would silently match nothing.
 */
export const SPEC_COMMANDS = ['help', 'status', 'register', 'deregister', 'scale', 'drain', 'undrain', 'render'] as const;

export const knownCommands = (plugins: readonly Plugin[]) => [
  ...new Set([...SPEC_COMMANDS, ...plugins.flatMap((p) => p.commands.map((c) => c.name))]),
];

export interface Runtime {
  router: Router;
  registry: Registry;
  acl: AclStore;
  metrics: Metrics;
  close(): Promise<void>;
}

/** The composition root shared by `serve` and `shell`: adapters built once and injected. */
export async function buildRuntime(opts: {
  config: Config;
  secrets: Pick<Secrets, 'etcdPassword'>;
  log: Logger;
  feed: FeedSink;
  watchAcl?: boolean;
}): Promise<Runtime> {
  const { config, log, feed } = opts;
  const plugins = loadPlugins();
  const acl = await AclStore.load(config.acl.path, {
    feed,
    knownCommands: knownCommands(plugins),
    onError: (err) => log.error({ err }, 'acl watcher failed'),
  });
  if (opts.watchAcl) acl.watch();
  const registry = createEtcdRegistry(config, {
    ...(opts.secrets.etcdPassword !== undefined ? { password: opts.secrets.etcdPassword } : {}),
    log: log.child({ component: 'etcd' }),
  });
  const metrics = createMetrics({ defaults: true });
  const router = new Router({ plugins, acl, services: { registry, feed, config }, log, metrics });
  return {
    router,
    registry,
    acl,
    metrics,
    async close() {
      acl.close();
      await registry.close();
    },
  };
}
