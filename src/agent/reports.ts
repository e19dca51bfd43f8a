/**
 * Reading the agents' last apply results back (`<switchyard>/agents/<agent-id>`), for
 * `status`. The keys are written by other processes, maybe another version, maybe by
 * hand: every value is validated, and one that does not validate is shown as a problem
 * next to the others rather than failing the listing.
 */
import type { EtcdRegistry } from '../adapters/etcd/registry.js';
import { toRegistryError } from '../adapters/etcd/errors.js';
import { parseApplyResult } from '../core/apply-result.js';
import type { AgentReport } from '../core/facades.js';

export type { AgentReport };
import { NAME_RE } from '../core/names.js';
import { quoteKey } from '../core/quote.js';

export interface AgentReports {
  list(): Promise<AgentReport[]>;
}

export function parseAgentReport(agentId: string, value: string): AgentReport {
  const result = parseApplyResult(value);
  return typeof result === 'string' ? { agentId, problem: result } : { agentId, result };
}

/** The agent ID from its key, quoted when it is not one an agent could have written (a hand-made key). */
function shownId(raw: string): string {
  return NAME_RE.test(raw) ? raw : quoteKey(raw);
}

export class EtcdAgentReports implements AgentReports {
  constructor(private readonly registry: EtcdRegistry) {}

  async list(): Promise<AgentReport[]> {
    const dir = this.registry.layout.agentsDir();
    let kvs;
    try {
      kvs = (await this.registry.client.getAll().prefix(dir).exec()).kvs;
    } catch (err) {
      throw toRegistryError(err, this.registry.endpoints, 'reading the agents’ apply results');
    }
    return kvs
      .map((kv) => parseAgentReport(shownId(kv.key.toString().slice(dir.length)), kv.value.toString()))
      .sort((a, b) => a.agentId.localeCompare(b.agentId));
  }
}
