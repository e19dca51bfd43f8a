/**
 * Reading the agents' last apply results back (`<switchyard>/agents/<agent-id>`), for
 * `status`. The keys are written by other processes, maybe another version, maybe by
 * hand: every value is validated, and one that does not validate is shown as a problem
 * next to the others rather than failing the listing.
 */
import { z } from 'zod';
import type { EtcdRegistry } from '../adapters/etcd/registry.js';
import { toRegistryError } from '../adapters/etcd/errors.js';
import type { ApplyResult } from '../adapters/haproxy/apply.js';

export type AgentReport = { agentId: string; result: ApplyResult } | { agentId: string; problem: string };

export interface AgentReports {
  list(): Promise<AgentReport[]>;
}

const lines = z.array(z.string());

const applyResultSchema = z.object({
  agentId: z.string(),
  method: z.enum(['runtime', 'reload', 'none']),
  ok: z.boolean(),
  durationMs: z.number().nonnegative(),
  changes: lines,
  error: lines.optional(),
  warnings: lines.optional(),
  pending: lines.optional(),
  reasons: lines.optional(),
  failure: z.enum(['unavailable', 'render', 'check', 'reload', 'runtime', 'internal']).optional(),
  worker: z.number().int().optional(),
  at: z.string(),
});

export function parseAgentReport(agentId: string, value: string): AgentReport {
  let data: unknown;
  try {
    data = JSON.parse(value);
  } catch {
    return { agentId, problem: 'not JSON' };
  }
  const r = applyResultSchema.safeParse(data);
  if (!r.success) {
    const issues = r.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || 'value'}: ${i.message}`);
    return { agentId, problem: `not an apply result (${issues.join('; ')})` };
  }
  return { agentId, result: r.data };
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
      .map((kv) => parseAgentReport(kv.key.toString().slice(dir.length), kv.value.toString()))
      .sort((a, b) => a.agentId.localeCompare(b.agentId));
  }
}
