/**
 * A router over the real plugins with an in-process HAProxy agent, as `serve` builds it:
 * real etcd (shared, private prefix), a real HAProxy, `haproxy` and `agents` services.
 */
import { Etcd3 } from 'etcd3';
import type { EtcdRegistry } from '../../src/adapters/etcd/registry.js';
import { startLocalAgent, type LocalAgent } from '../../src/app/local-agent.js';
import { EtcdAgentReports } from '../../src/agent/reports.js';
import type { Config } from '../../src/config/schema.js';
import type { Reply } from '../../src/core/reply.js';
import { routerOver, shellCaller } from './core.js';
import { sharedEtcdEndpoint, uniquePrefix, wipe } from './etcd.js';
import { agentConfig, freePort, registryAt, startHaproxy, testLog, type TestHaproxy } from './haproxy.js';

export interface AgentRouter {
  hap: TestHaproxy;
  registry: EtcdRegistry;
  raw: Etcd3;
  prefix: string;
  config: Config;
  local: LocalAgent;
  /** http://127.0.0.1:<port>/ of the service `web`. */
  url: string;
  /** Run a command as an allowed user; progress lines are collected in `progress` (and passed to `onProgress` as they come). */
  run(text: string, onProgress?: (line: string) => void): Promise<Reply & { progress: string[] }>;
  /** The same, through a router whose services have no local agent. */
  runWithoutAgent(text: string): Promise<Reply>;
  dispose(): Promise<void>;
}

export async function agentRouter(agentId: string, opts: { template?: string } = {}): Promise<AgentRouter> {
  const endpoint = sharedEtcdEndpoint();
  const prefix = uniquePrefix(agentId);
  const raw = new Etcd3({ hosts: endpoint });
  const registry = registryAt(endpoint, prefix);
  const hap = await startHaproxy();
  const port = await freePort();
  const config = agentConfig(endpoint, prefix, hap, agentId, { web: { listen: `127.0.0.1:${port}` } }, opts.template);
  const local = await startLocalAgent(config, registry, testLog, {
    checkInterMs: 500,
    removeGraceMs: 2000,
    statusTtlSeconds: 2,
    retry: { minMs: 50, maxMs: 400 },
  });
  const base = { registry, config, reports: new EtcdAgentReports(registry) };
  const withAgent = routerOver({ ...base, local: local.control });
  const withoutAgent = routerOver(base);
  let n = 0;
  return {
    hap,
    registry,
    raw,
    prefix,
    config,
    local,
    url: `http://127.0.0.1:${port}/`,
    async run(text, onProgress) {
      const progress: string[] = [];
      const reply = await withAgent.dispatch({
        text,
        caller: shellCaller('U0ONCALL'),
        requestId: `${agentId}-${++n}`,
        onProgress: (t) => {
          progress.push(t);
          onProgress?.(t);
        },
      });
      return { ...reply, progress };
    },
    runWithoutAgent: (text) => withoutAgent.dispatch({ text, caller: shellCaller('U0ONCALL'), requestId: `${agentId}-${++n}` }),
    async dispose() {
      await local.stop();
      await registry.close();
      await hap.dispose();
      await wipe(raw, `${prefix}/`);
      raw.close();
    },
  };
}
