/**
 * The facades plugins stand on, built once per process from the adapters: the registry with
 * writes attributed to the ambient cause, one rotation, orchestration, routing and the feed.
 */
import { agentRouting, serverLookup } from '../agent/routing.js';
import type { HaproxyControl } from '../agent/control.js';
import type { AgentReports } from '../agent/reports.js';
import { EtcdRegistry } from '../adapters/etcd/registry.js';
import type { Config } from '../config/schema.js';
import type { EtcdFeedMutes } from '../adapters/etcd/feed-mutes.js';
import { fail, SwitchyardError } from '../core/errors.js';
import { feedRoutes } from './feeds.js';
import type { Facades, FeedFacade, HistoryFacade, RegistryFacade } from '../core/facades.js';
import { currentActor, type FeedSink } from '../core/feed.js';
import type { Logger } from '../core/log.js';
import type { Registry } from '../core/registry.js';
import type { OrchestratorDeps } from '../orchestrator/deps.js';
import { DockerOrchestration } from '../orchestrator/facade.js';
import { ServiceRotation } from '../orchestrator/rotation.js';
import { orchestratorSettings } from '../orchestrator/settings.js';
import { listWatchers } from '../watch/records.js';

export interface FacadeSources {
  registry: Registry;
  feed: FeedSink;
  config: Config;
  log: Logger;
  /** Docker orchestration, when `docker:` is configured. */
  orchestration?: OrchestratorDeps;
  /** This process's HAProxy agent, when it runs one. */
  local?: HaproxyControl;
  /** Every agent's last apply, from etcd. */
  reports?: AgentReports;
  /** Feed mutes in etcd; without them `feed mute` answers E_UNAVAILABLE. */
  feedMutes?: EtcdFeedMutes;
  /** The change history in etcd; without it `history` answers E_UNAVAILABLE. */
  history?: HistoryFacade;
}

const noHistory: HistoryFacade = {
  list: () => Promise.reject(new SwitchyardError('E_UNAVAILABLE', 'no change history is kept here (it lives in etcd)')),
};

/** `by` is whoever runs the command (the router's ambient cause), never a plugin's say. */
export function registryFacade(registry: Registry): RegistryFacade {
  return {
    list: (service) => registry.list(service),
    get: (service, instance) => registry.get(service, instance),
    register: (service, instance, address, opts = {}) =>
      registry.register(service, instance, address, {
        by: currentActor(),
        ...(opts.ttlMs !== undefined ? { ttlMs: opts.ttlMs } : {}),
        ...(opts.weight !== undefined ? { weight: opts.weight } : {}),
      }),
    deregister: (service, instance) => registry.deregister(service, instance),
    setState: (service, instance, state) => registry.setState(service, instance, state, currentActor()),
    setWeight: (service, instance, weight) => registry.setWeight(service, instance, weight, currentActor()),
    getDesired: (service) => registry.getDesired(service),
    health: () => registry.health(),
  };
}

export function buildFacades(s: FacadeSources): Facades {
  const log = s.log.child({ component: 'facades' });
  const local = s.local;
  return {
    registry: { ...registryFacade(s.registry), ...(s.registry instanceof EtcdRegistry ? { watchers: () => listWatchers(s.registry as EtcdRegistry) } : {}) },
    rotation: new ServiceRotation({
      registry: s.registry,
      ...(s.orchestration ? { locks: s.orchestration.locks } : {}),
      lockWaitMs: orchestratorSettings(s.config).lockWaitMs,
      ...(local ? { haproxy: { agentId: local.agentId, lookup: serverLookup(() => local.stats()) } } : {}),
      log,
    }),
    orchestration: new DockerOrchestration(s.config, s.orchestration, log),
    routing: agentRouting({ ...(local ? { local } : {}), ...(s.reports ? { reports: s.reports } : {}) }),
    feed: feedFacade(s),
    history: s.history ?? noHistory,
  };
}

/** Mutes scoped to the channel's feed when typed in one; `by` is whoever runs the command. */
function feedFacade(s: FacadeSources): FeedFacade {
  const channels = new Set(feedRoutes(s.config).map((r) => r.channel));
  const store = () => s.feedMutes ?? fail('E_UNAVAILABLE', 'feed mutes are kept in etcd, which this process does not use');
  const scopeOf = (channel: string) => (channels.has(channel) ? channel : 'all');
  return {
    publish: (e) => s.feed.publish(e),
    async mute(service, ms, channel) {
      const m = await store().mute(scopeOf(channel), service, ms, currentActor());
      return { scope: m.scope === 'all' ? 'every feed' : 'this feed', until: m.until };
    },
    unmute: (service, channel) => store().unmute(scopeOf(channel), service),
  };
}
