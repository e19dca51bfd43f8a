/**
 * The HAProxy half of `status`: HAProxy's state and current sessions per instance (from
 * this bot's own agent, when it runs one) and every agent's last apply (from etcd).
 */
import { backendName } from '../adapters/haproxy/model.js';
import type { StatRow } from '../adapters/haproxy/runtime-parse.js';
import type { Table } from '../core/reply.js';
import type { HaproxyControl } from './control.js';
import { formatApplyResult } from './format.js';
import type { AgentReports } from './reports.js';

export interface HaproxyColumns {
  header: string[];
  cells(service: string, instance: string): string[];
  /** Set when HAProxy could not be asked. */
  problem?: string;
}

const HEADER = ['haproxy', 'sessions'];

/** Columns from the local HAProxy; undefined when this process runs no agent. */
export async function haproxyColumns(haproxy: HaproxyControl | undefined): Promise<HaproxyColumns | undefined> {
  if (!haproxy) return undefined;
  let rows: StatRow[];
  try {
    rows = await haproxy.stats();
  } catch (err) {
    return { header: HEADER, cells: () => ['?', '?'], problem: `haproxy ${haproxy.agentId}: ${err instanceof Error ? err.message : String(err)}` };
  }
  const byKey = new Map(rows.map((r) => [`${r.backend}/${r.name}`, r]));
  return {
    header: HEADER,
    cells(service, instance) {
      const r = byKey.get(`${backendName(service)}/${instance}`);
      // Not in HAProxy: not applied yet, or left out (see the agent's warnings).
      return r ? [r.status, String(r.scur)] : ['-', '-'];
    },
  };
}

export interface AgentsView {
  table?: { title: string; table: Table };
  problems: string[];
}

/** One row per agent with its last apply; unreadable reports become problems. */
export async function agentsView(reports: AgentReports | undefined, now = Date.now()): Promise<AgentsView> {
  if (!reports) return { problems: [] };
  let list;
  try {
    list = await reports.list();
  } catch (err) {
    return { problems: [`agents: ${err instanceof Error ? err.message : String(err)}`] };
  }
  const problems: string[] = [];
  const rows: string[][] = [];
  for (const r of list) {
    if ('problem' in r) {
      problems.push(`unreadable apply result of agent ${r.agentId}: ${r.problem}`);
      rows.push([r.agentId, '?', 'unreadable result', '-']);
      continue;
    }
    const text = formatApplyResult(r.result);
    const prefix = `haproxy ${r.result.agentId}: `;
    rows.push([r.agentId, r.result.ok ? 'ok' : 'FAILED', text.startsWith(prefix) ? text.slice(prefix.length) : text, ago(now - Date.parse(r.result.at))]);
  }
  if (rows.length === 0) return { problems };
  return { table: { title: `HAProxy agents: ${rows.length}`, table: { header: ['agent', 'result', 'last apply', 'at'], rows } }, problems };
}

function ago(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}
