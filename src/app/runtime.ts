import { EtcdApprovalStore } from '../adapters/etcd/approvals.js';
import { EtcdFeedMutes } from '../adapters/etcd/feed-mutes.js';
import { EtcdHistory } from '../adapters/etcd/history.js';
import { createEtcdRegistry, type EtcdRegistry } from '../adapters/etcd/registry.js';
import { EtcdAgentReports } from '../agent/reports.js';
import type { Secrets } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { AclStore } from '../core/acl-store.js';
import { ApprovalGate } from '../core/approval.js';
import { logAudit } from '../core/audit.js';
import type { Facades } from '../core/facades.js';
import type { FeedSink } from '../core/feed.js';
import type { Logger } from '../core/log.js';
import { createMetrics, type Metrics } from '../core/metrics.js';
import type { Plugin } from '../core/plugin-api.js';
import { Router } from '../core/router.js';
import type { OrchestratorDeps } from '../orchestrator/deps.js';
import { BUILTIN_PLUGINS, makePluginApi } from './builtin-plugins.js';
import { loadPlugins, type LoadedPlugins } from './plugin-loader.js';
import { buildFacades } from './facades.js';
import type { LocalAgent } from './local-agent.js';

/**
 * Every command name the SPEC defines. acl.yaml may name commands whose plugin is not
 * loaded here (yet); a name outside this list is a typo that would silently match nothing.
 */
export const SPEC_COMMANDS = ['help', 'status', 'register', 'deregister', 'weight', 'scale', 'drain', 'undrain', 'render', 'history', 'feed'] as const;

export const knownCommands = (plugins: readonly Plugin[]) => [...new Set([...SPEC_COMMANDS, ...plugins.flatMap((p) => p.commands.map((c) => c.name))])];

/**
 * The one place the runtime loads plugins: built-ins first, then (with the plugin loader)
 * the modules listed under `plugins:` in switchyard.yaml.
 */
export function loadRuntimePlugins(o: { config: Config; facades: Facades; log: Logger }): Promise<LoadedPlugins> {
  return loadPlugins({ builtins: BUILTIN_PLUGINS, entries: o.config.plugins, makeApi: makePluginApi(o.facades, o.log), log: o.log });
}

export interface Runtime {
  router: Router;
  /** The etcd adapter itself (a Registry), for the feed, confirmations and agents. */
  registry: EtcdRegistry;
  acl: AclStore;
  /** Two-person approval: requests in etcd, presses decided against the live ACL. */
  approvals: ApprovalGate;
  metrics: Metrics;
  facades: Facades;
  plugins: readonly Plugin[];
  /** Docker orchestration (scale, death watcher, reconcile), when `docker:` is configured. */
  orchestration?: OrchestratorDeps;
  /** This process's HAProxy agent, when asked for and `haproxy:` is configured. */
  agent?: LocalAgent;
  close(): Promise<void>;
}

/** The composition root shared by `serve` and `shell`: adapters and facades built once and injected. */
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
  const registry = createEtcdRegistry(config, {
    ...(opts.secrets.etcdPassword !== undefined ? { password: opts.secrets.etcdPassword } : {}),
    log: log.child({ component: 'etcd' }),
  });
  const metrics = createMetrics({ defaults: true });
  // Docker and HAProxy adapters (dockerode, handlebars: ~40 MB resident) load only when configured.
  const orchestration = config.docker ? (await import('./orchestration.js')).buildOrchestration({ config, registry, feed, log }) : undefined;
  // No feed for the agent: the #ops feed reports applies from the agents' keys in etcd, so
  // handing it the sink as well would post every apply twice.
  let agent: LocalAgent | undefined;
  let acl: AclStore | undefined;
  let loaded: LoadedPlugins | undefined;
  try {
    agent =
      opts.agent && config.haproxy ? await (await import('./local-agent.js')).startLocalAgent(config, registry, log.child({ component: 'agent' })) : undefined;
    const facades = buildFacades({
      registry,
      feed,
      config,
      log,
      ...(orchestration ? { orchestration } : {}),
      ...(agent ? { local: agent.control } : {}),
      reports: new EtcdAgentReports(registry),
      history: new EtcdHistory(registry),
      feedMutes: new EtcdFeedMutes(registry),
    });
    loaded = await loadRuntimePlugins({ config, facades, log });
    const { plugins } = loaded;
    acl = await AclStore.load(config.acl.path, {
      feed,
      knownCommands: knownCommands(plugins),
      onError: (err) => log.error({ err }, 'acl watcher failed'),
    });
    if (opts.watchAcl) acl.watch();
    const approvals: ApprovalGate = new ApprovalGate({
      store: new EtcdApprovalStore(registry),
      acl,
      dispatcher: () => router,
      audit: logAudit(log),
      feed,
      log: log.child({ component: 'approval' }),
    });
    const router: Router = new Router({ plugins, acl, facades, log, metrics, approvals });
    // Start hooks once everything loaded, before the first command is served.
    await loaded.start();
    const aclStore = acl;
    const pluginHooks = loaded;
    return {
      router,
      registry,
      acl,
      approvals,
      metrics,
      facades,
      plugins,
      ...(orchestration ? { orchestration } : {}),
      ...(agent ? { agent } : {}),
      async close() {
        await pluginHooks.stop();
        await agent?.stop();
        aclStore.close();
        await registry.close();
      },
    };
  } catch (err) {
    // A template or a plugin that does not load stops start-up; nothing may be left running.
    await agent?.stop();
    await loaded?.stop();
    acl?.close();
    await registry.close();
    throw err;
  }
}
