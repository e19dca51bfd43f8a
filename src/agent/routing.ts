/**
 * The Routing facade over this process's agent and the agents' reports in etcd, and the one
 * place that knows how an instance is found in HAProxy's `show stat` (its server is named
 * after it, in the backend named after its service).
 */
import { backendName } from '../adapters/haproxy/model.js';
import type { StatRow } from '../adapters/haproxy/runtime-parse.js';
import type { LocalRouting, Routing, ServerState } from '../core/facades.js';
import type { HaproxyControl } from './control.js';
import { formatApplyResult } from './format.js';
import type { AgentReports } from './reports.js';

/** HAProxy's aggregate lines, not servers. */
const AGGREGATES = new Set(['BACKEND', 'FRONTEND']);

export function serverStates(rows: readonly StatRow[]): ServerState[] {
  return rows
    .filter((r) => !AGGREGATES.has(r.name))
    .map((r) => ({ service: r.backend, instance: r.name, status: r.status, sessions: r.scur, weight: r.weight }));
}

/** The server of `service/instance` in a `show stat`, undefined when HAProxy does not have it. */
export function findServer(rows: readonly StatRow[], service: string, instance: string): ServerState | undefined {
  const backend = backendName(service);
  const row = rows.find((r) => r.backend === backend && r.name === instance);
  return row && serverStates([row])[0];
}

/** Looks one server up each call: what a drain polls. */
export const serverLookup =
  (stats: () => Promise<StatRow[]>) =>
  async (service: string, instance: string): Promise<ServerState | undefined> =>
    findServer(await stats(), service, instance);

export function localRouting(control: HaproxyControl): LocalRouting {
  return {
    agentId: control.agentId,
    configPath: control.configPath,
    servers: async () => serverStates(await control.stats()),
    candidate: () => control.candidate(),
    live: () => control.live(),
    check: (text) => control.check(text),
    applyNow: (timeoutMs) => control.applyNow(timeoutMs),
  };
}

export function agentRouting(opts: { local?: HaproxyControl; reports?: AgentReports }): Routing {
  const local = opts.local && localRouting(opts.local);
  return {
    ...(local ? { local } : {}),
    agents: async () => (opts.reports ? opts.reports.list() : []),
    describe: formatApplyResult,
  };
}
