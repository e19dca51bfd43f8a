/**
 * Compare what the running HAProxy holds (`show servers state`, `show backend`) with the
 * model and list the runtime operations that close the gap. Pure.
 *
 * Working from HAProxy's actual state rather than from the previous model makes the
 * runtime path idempotent: a half-applied batch, a server still waiting to be deleted,
 * a restart the agent did not see, or a reload whose state file disagreed — the next
 * pass fixes each of them.
 */
import type { HaproxyModel, ModelServer } from './model.js';
import { ADMIN, adminModeOf, type ServerStateRow } from './runtime-parse.js';
import { serverLabel } from './labels.js';

export type RuntimeOp =
  | { kind: 'add'; backend: string; server: ModelServer }
  | { kind: 'remove'; backend: string; name: string; label: string }
  | { kind: 'state'; backend: string; name: string; state: ModelServer['state']; label: string }
  | { kind: 'weight'; backend: string; name: string; weight: number; label: string }
  | { kind: 'addr'; backend: string; name: string; host: string; port: number; label: string };

export interface Reconciliation {
  ops: RuntimeOp[];
  /** Differences the runtime API cannot fix (a missing backend, DNS addresses). */
  needsReload: string[];
  /** The ops in words, for reports. */
  changes: string[];
}

function sameAddress(row: ServerStateRow, s: ModelServer): boolean {
  if (row.port !== s.port) return false;
  if (s.dns) return row.fqdn === s.host;
  // HAProxy prints IPv6 in its canonical form; compare case-insensitively, which covers
  // what parseHostPort accepts in practice.
  return row.addr.toLowerCase() === s.host.toLowerCase();
}

export function reconcile(model: HaproxyModel, rows: ServerStateRow[], backends: ReadonlySet<string>): Reconciliation {
  const ops: RuntimeOp[] = [];
  const needsReload: string[] = [];
  const changes: string[] = [];
  const byBackend = new Map<string, Map<string, ServerStateRow>>();
  for (const r of rows) {
    let m = byBackend.get(r.backend);
    if (!m) byBackend.set(r.backend, (m = new Map()));
    m.set(r.name, r);
  }
  for (const svc of model.services) {
    if (!backends.has(svc.backend)) {
      needsReload.push(`backend ${svc.backend} is not in the running HAProxy`);
      continue;
    }
    const live = byBackend.get(svc.backend) ?? new Map<string, ServerStateRow>();
    const wanted = new Set<string>();
    for (const s of svc.servers) {
      wanted.add(s.name);
      const label = serverLabel(s.service, s.name);
      const row = live.get(s.name);
      if (!row) {
        if (s.dns) {
          needsReload.push(`${label} has a DNS address, which HAProxy 2.6 does not resolve for servers added at runtime`);
          continue;
        }
        ops.push({ kind: 'add', backend: svc.backend, server: s });
        changes.push(`+${label}${s.state === 'ready' ? '' : ` (${s.state})`}`);
        continue;
      }
      if (!sameAddress(row, s)) {
        if (s.dns || row.fqdn) {
          needsReload.push(`${label} changed a DNS address`);
          continue;
        }
        ops.push({ kind: 'addr', backend: svc.backend, name: s.name, host: s.host, port: s.port, label });
        changes.push(`${label} → ${s.address}`);
      }
      const mode = adminModeOf(row);
      const stateOp: RuntimeOp | undefined = mode === s.state ? undefined : { kind: 'state', backend: svc.backend, name: s.name, state: s.state, label };
      const weightOp: RuntimeOp | undefined =
        row.uweight === s.weight ? undefined : { kind: 'weight', backend: svc.backend, name: s.name, weight: s.weight, label };
      // Leaving rotation: state first, so the new weight never attracts traffic.
      // Entering it: weight first, so it starts with the right share.
      const ordered = s.state === 'ready' ? [weightOp, stateOp] : [stateOp, weightOp];
      for (const op of ordered) if (op) ops.push(op);
      if (stateOp) changes.push(`${label} ${s.state}`);
      if (weightOp) changes.push(`${label} weight ${s.weight}`);
    }
    for (const [name, row] of live) {
      if (wanted.has(name)) continue;
      const label = serverLabel(svc.name, name);
      ops.push({ kind: 'remove', backend: svc.backend, name, label });
      // A server already in maintenance with no weight change is one whose deletion is
      // pending (sessions still open): not a new change.
      if (adminModeOf(row) !== 'maint') changes.push(`-${label}`);
    }
  }
  return { ops, needsReload, changes };
}

/**
 * What `show backend` and `show servers state` would print if the running HAProxy held
 * exactly `model`: lets a step whose baseline is trusted plan its runtime commands without
 * first asking HAProxy (two socket round trips off the path of every change). The caller
 * confirms against HAProxy's real state afterwards.
 */
export function assumedState(model: HaproxyModel): { rows: ServerStateRow[]; backends: Set<string> } {
  const rows: ServerStateRow[] = [];
  for (const svc of model.services) {
    for (const s of svc.servers) {
      rows.push({
        backend: svc.backend,
        backendId: 0,
        name: s.name,
        id: 0,
        addr: s.host,
        port: s.port,
        opState: 2,
        adminState: s.state === 'maint' ? ADMIN.FMAINT : s.state === 'drain' ? ADMIN.FDRAIN : 0,
        uweight: s.weight,
        iweight: s.weight,
        ...(s.dns ? { fqdn: s.host } : {}),
      });
    }
  }
  return { rows, backends: new Set(model.services.map((svc) => svc.backend)) };
}
