/**
 * Decide how to go from the last applied model to the next: nothing, runtime API, or a
 * reload. Pure.
 *
 * Runtime only covers what HAProxy 2.6 can change on a live process without a reload:
 * servers added to / removed from EXISTING backends, their state, weight and IP address.
 * Anything structural (backends, frontends, modes, template, global settings) or a
 * server with a DNS name (a runtime-added server never resolves it) is a reload.
 */
import type { HaproxyModel, ModelServer, ModelService } from './model.js';
import { serverLabel } from './labels.js';

/** What was last written and made live. */
export interface AppliedConfig {
  model: HaproxyModel;
  templateHash: string;
  rendered: string;
}

export type PlanMethod = 'none' | 'runtime' | 'reload';

export interface Plan {
  method: PlanMethod;
  /** Human-readable changes: "+web-4", "-web-2", "web-3 drain", "web-3 weight 50", "+backend api". */
  changes: string[];
  /** Why a reload (or, at start-up, why runtime reconciliation) was chosen. */
  reasons: string[];
}

function diffServers(prev: ModelService, next: ModelService, changes: string[], reloadReasons: string[]): void {
  const before = new Map(prev.servers.map((s) => [s.name, s]));
  const after = new Map(next.servers.map((s) => [s.name, s]));
  const label = (s: ModelServer) => serverLabel(s.service, s.name);
  for (const [name, s] of after) {
    const old = before.get(name);
    if (!old) {
      changes.push(`+${label(s)}${s.state === 'ready' ? '' : ` (${s.state})`}`);
      if (s.dns) reloadReasons.push(`${label(s)} has a DNS address, which HAProxy 2.6 does not resolve for servers added at runtime`);
      continue;
    }
    if (old.address !== s.address) {
      changes.push(`${label(s)} ${old.address} → ${s.address}`);
      if (s.dns || old.dns) reloadReasons.push(`${label(s)} changed a DNS address`);
    }
    if (old.state !== s.state) changes.push(`${label(s)} ${s.state}`);
    if (old.weight !== s.weight) changes.push(`${label(s)} weight ${s.weight}`);
  }
  for (const [name, s] of before) if (!after.has(name)) changes.push(`-${label(s)}`);
}

function sameShape(a: ModelService, b: ModelService): string | undefined {
  if (a.backend !== b.backend) return `backend of ${b.name} renamed`;
  if (a.mode !== b.mode) return `${b.name} mode ${a.mode} → ${b.mode}`;
  if (a.balance !== b.balance) return `${b.name} balance ${a.balance} → ${b.balance}`;
  if ((a.frontend?.bind ?? null) !== (b.frontend?.bind ?? null) || (a.frontend?.name ?? null) !== (b.frontend?.name ?? null)) {
    return `${b.name} listen ${a.listen ?? 'none'} → ${b.listen ?? 'none'}`;
  }
  return undefined;
}

/**
 * @param prev what is live (undefined at start-up or after HAProxy was unreachable)
 * @param next what the registry wants now
 * @param live the current haproxy.cfg text, consulted only when prev is undefined
 */
export function planApply(prev: AppliedConfig | undefined, next: AppliedConfig, live?: string): Plan {
  if (!prev) {
    // A running HAProxy whose file already says exactly this needs no reload: its
    // runtime state is reconciled against the model instead (servers added at runtime
    // before a restart of the agent are in the file already).
    if (live !== undefined && live === next.rendered) return { method: 'runtime', changes: [], reasons: ['start-up: live config is current'] };
    return { method: 'reload', changes: [], reasons: [live === undefined ? 'first apply: no live config' : 'start-up: live config differs from the registry'] };
  }
  const changes: string[] = [];
  const reasons: string[] = [];
  if (prev.templateHash !== next.templateHash) {
    changes.push('template changed');
    reasons.push('template changed');
  }
  const g0 = prev.model.global;
  const g1 = next.model.global;
  if (g0.adminSocket !== g1.adminSocket || g0.stateFile !== g1.stateFile || g0.checkInterMs !== g1.checkInterMs) {
    changes.push('global settings changed');
    reasons.push('global settings changed');
  }
  const before = new Map(prev.model.services.map((s) => [s.name, s]));
  const after = new Map(next.model.services.map((s) => [s.name, s]));
  for (const [name, s] of after) {
    const old = before.get(name);
    if (!old) {
      changes.push(`+backend ${s.backend}${s.frontend ? ` (listen ${s.frontend.bind})` : ''}`);
      reasons.push(`new backend ${s.backend}`);
      for (const srv of s.servers) changes.push(`+${serverLabel(srv.service, srv.name)}`);
      continue;
    }
    const shape = sameShape(old, s);
    if (shape) {
      changes.push(shape);
      reasons.push(shape);
    }
    diffServers(old, s, changes, reasons);
  }
  for (const [name, s] of before) {
    if (!after.has(name)) {
      changes.push(`-backend ${s.backend}`);
      reasons.push(`backend ${s.backend} removed`);
    }
  }
  if (reasons.length > 0) return { method: 'reload', changes, reasons };
  if (changes.length > 0) return { method: 'runtime', changes, reasons };
  // Same model, same template: the text can only differ if the template is not
  // deterministic; the file is what a restart reads, so trust the text.
  if (prev.rendered !== next.rendered) return { method: 'reload', changes: ['rendered config changed'], reasons: ['rendered config changed'] };
  return { method: 'none', changes: [], reasons: [] };
}
