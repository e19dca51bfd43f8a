/**
 * Docker orchestration's adapters for a config with `docker:` (the runtime calls this;
 * nothing connects until first used, so a Docker engine that is down does not stop start-up).
 */
import { createDockerEngine } from '../adapters/docker/engine.js';
import { resolveDockerHost } from '../adapters/docker/host.js';
import { SwarmEngine } from '../adapters/docker/swarm.js';
import type { EtcdRegistry } from '../adapters/etcd/registry.js';
import { HaproxyRuntime } from '../adapters/haproxy/runtime.js';
import { defaultAgentId } from '../agent/agent.js';
import { serverLookup } from '../agent/routing.js';
import type { Config } from '../config/schema.js';
import type { FeedSink } from '../core/feed.js';
import type { Logger } from '../core/log.js';
import type { OrchestratorDeps } from '../orchestrator/deps.js';
import { EtcdServiceLocks } from '../orchestrator/lock.js';
import { orchestratorSettings } from '../orchestrator/settings.js';

export function buildOrchestration(opts: { config: Config; registry: EtcdRegistry; feed: FeedSink; log: Logger }): OrchestratorDeps {
  const { config, registry, feed } = opts;
  const log = opts.log.child({ component: 'orchestrator' });
  const settings = orchestratorSettings(config);
  const host = resolveDockerHost(config.docker?.host);
  const engine = createDockerEngine({ host, log: opts.log.child({ component: 'docker' }) });
  // Only with a swarm service: a plain engine is never asked about Swarm.
  const swarm = Object.values(config.services).some((s) => s.backend === 'swarm') ? new SwarmEngine(host, opts.log.child({ component: 'swarm' })) : undefined;
  const locks = new EtcdServiceLocks(registry.client, {
    keyOf: (service) => registry.layout.lockKey(service),
    ttlMs: settings.lockTtlMs,
    endpoints: config.etcd.endpoints,
    log,
  });
  // With an HAProxy on this host (haproxy:), scale-down waits for its sessions to end; read
  // from the admin socket, so it works whether or not this process runs the agent.
  const h = config.haproxy;
  const runtime = h && new HaproxyRuntime(h.adminSocket, { timeoutMs: 2000 });
  const haproxy = h && runtime ? { agentId: h.agentId ?? defaultAgentId(), lookup: serverLookup(() => runtime.showStat()) } : undefined;
  const notices = logNotices(log);
  return { registry, engine, locks, feed, notices, config, settings, log, ...(haproxy ? { haproxy } : {}), ...(swarm ? { swarm } : {}) };
}

/**
 * Where orchestrator notices (a death, a restart) go: the log only. #ops hears of a death
 * through the deregistration's cause in etcd, which the feed poster reports once across
 * replicas; posting the notice too would say it twice.
 */
export function logNotices(log: Logger): FeedSink {
  return { publish: (e) => log.info({ kind: e.kind }, e.text) };
}
