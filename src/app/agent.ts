/**
 * Wiring for `switchyard agent` and the in-process agent of `switchyard serve`: an agent
 * on an EtcdRegistry, publishing its results on a lease through the registry's client.
 */
import type { EtcdRegistry } from '../adapters/etcd/registry.js';
import { SwitchyardError } from '../core/errors.js';
import type { Config } from '../config/schema.js';
import { defaultAgentId, HaproxyAgent, type AgentOptions } from '../agent/agent.js';
import { EtcdAgentStatusStore } from '../agent/status-store.js';

export interface CreateAgentOptions extends Omit<AgentOptions, 'config' | 'registry' | 'status'> {
  /** Lease TTL of the agent's status key. Default 10 s. */
  statusTtlSeconds?: number;
}

export function createHaproxyAgent(config: Config, registry: EtcdRegistry, opts: CreateAgentOptions): HaproxyAgent {
  const haproxy = config.haproxy;
  if (!haproxy) throw new SwitchyardError('E_CONFIG', 'no haproxy: section in the config, so there is no agent to run');
  const agentId = opts.agentId ?? haproxy.agentId ?? defaultAgentId();
  const status = new EtcdAgentStatusStore({
    client: registry.client,
    key: registry.layout.agentKey(agentId),
    log: opts.log,
    ...(opts.statusTtlSeconds !== undefined ? { ttlSeconds: opts.statusTtlSeconds } : {}),
  });
  return new HaproxyAgent({ ...opts, agentId, config: { haproxy, services: config.services, registry: config.registry }, registry, status });
}
