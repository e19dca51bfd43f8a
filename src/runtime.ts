import { loadPlugins } from '../plugins/index.js';
import { createEtcdRegistry, type EtcdRegistry } from './adapters/etcd/registry.js';
import type { Config } from './config/schema.js';
import type { Secrets } from './config/load.js';
import { AclStore } from './core/acl-store.js';
import type { FeedSink } from './core/feed.js';
import type { Logger } from './core/log.js';
import { createMetrics, type Metrics } from './core/metrics.js';
import type { Plugin } from './core/plugin.js';
import { Router } from './core/router.js';
import type { OrchestratorDeps } from './orchestrator/deps.js';
import type { LocalAgent } from './agent/local.js';
import { EtcdAgentReports } from './agent/reports.js';

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
  /** The etcd adapter itself (a Registry), for the feed, confirmations and agents. */
  registry: EtcdRegistry;
  acl: AclStore;
  metrics: Metrics;
  /** Docker orchestration (scale, death watcher, reconcile), when `docker:` is configured. */
  orchestration?: OrchestratorDeps;
  /** This process's HAProxy agent, when asked for and `haproxy:` is configured. */
  agent?: LocalAgent;
  close(): Promise<void>;
}

/** The composition root shared by `serve` and `shell`: adapters built once and injected. */
export async function buildRuntime(opts: {
  config: Config;
  secrets: Pick<Secrets, 'etcdPassword'>;
  log: Logger;
  feed: FeedSink;
  watchAcl?: boolean;
  /** Run the HAProxy agent in this process when `haproxy:` is configured (serve, shell). */
  agent?: boolean;
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
  // Docker and HAProxy adapters (dockerode, handlebars: ~40 MB resident) load only when configured.
  const orchestration = config.docker
    ? (await import('./orchestrator/wiring.js')).buildOrchestration({ config, registry, feed, log })
    : undefined;
  const docker = orchestration
    ? { containers: orchestration.engine, locks: orchestration.locks, ...(orchestration.sessions ? { sessions: orchestration.sessions } : {}) }
    : {};
  // No feed for the agent: the #ops feed reports applies from the agents' keys in etcd, so
  // handing it the sink as well would post every apply twice.
  let agent: LocalAgent | undefined;
  try {
    agent =
      opts.agent && config.haproxy
        ? await (await import('./agent/local.js')).startLocalAgent(config, registry, log.child({ component: 'agent' }))
        : undefined;
  } catch (err) {
    // A template that does not compile stops start-up; nothing may be left running.
    acl.close();
    await registry.close();
    throw err;
  }
  const haproxy = { agents: new EtcdAgentReports(registry), ...(agent ? { haproxy: agent.control } : {}) };
  const router = new Router({ plugins, acl, services: { registry, feed, config, ...docker, ...haproxy }, log, metrics });
  return {
    router,
    registry,
    acl,
    metrics,
    ...(orchestration ? { orchestration } : {}),
    ...(agent ? { agent } : {}),
    async close() {
      await agent?.stop();
      acl.close();
      await registry.close();
    },
  };
}
