import { z } from 'zod';
import { serviceName } from '../src/core/names.js';
import { defineCommand, type Plugin } from '../src/core/plugin.js';
import type { EtcdHealth, Instance } from '../src/core/registry.js';
import type { Reply } from '../src/core/reply.js';
import { containerColumns } from '../src/orchestrator/status-columns.js';
import { agentsView, haproxyColumns } from '../src/agent/status-view.js';

/** `status [service]`: what the registry holds, and whether etcd itself is healthy. */
export default function statusPlugin(): Plugin {
  return {
    name: 'status',
    commands: [
      defineCommand({
        name: 'status',
        summary: 'instances, their state and address, desired replicas, etcd health',
        args: z.object({ service: serviceName.optional() }),
        positionals: ['service'],
        serviceArg: 'service',
        mutating: false,
        async handler(ctx, { service }) {
          const { registry } = ctx.services;
          const health = await registry.health();
          if (!health.ok) return etcdDown(health);
          const listing = await registry.list(service);
          const byService = groupBy(listing.instances, (i) => i.service);
          if (service && !byService.has(service)) byService.set(service, []);
          // Container state per instance, when a Docker engine is configured.
          const containers = await containerColumns(ctx.services, service, ctx.log);
          for (const s of containers?.services ?? []) if (!byService.has(s)) byService.set(s, []);
          // HAProxy state and sessions per instance (this bot's own agent) and every agent's last apply.
          const [hap, agents] = await Promise.all([haproxyColumns(ctx.services.haproxy), agentsView(ctx.services.agents)]);
          const names = [...byService.keys()].sort();
          const desired = new Map(await Promise.all(names.map(async (n) => [n, await registry.getDesired(n)] as const)));

          const now = Date.now();
          const tables = names.map((name) => {
            const list = byService.get(name)!.sort((a, b) => a.instance.localeCompare(b.instance));
            const ready = list.filter((i) => (i.state?.state ?? 'ready') === 'ready').length;
            const want = desired.get(name);
            return {
              title: `${name}: ${list.length} instance${list.length === 1 ? '' : 's'}, ${ready} ready${want ? `, desired ${want.replicas}` : ''}`,
              table: {
                header: ['instance', 'address', 'state', 'weight', 'lease', 'changed by', 'since', ...(containers?.header ?? []), ...(hap?.header ?? [])],
                rows: [
                  ...list.map((i) => [...row(i, now), ...(containers?.cells(i.service, i.instance) ?? []), ...(hap?.cells(name, i.instance) ?? [])]),
                  ...(containers?.unregistered(name, new Set(list.map((i) => i.instance))) ?? []).map((u) => [u.instance, '-', 'unregistered', '-', '-', '-', '-', ...u.cells, ...(hap?.cells(name, u.instance) ?? [])]),
                ],
              },
            };
          });
          const total = listing.instances.length;
          const summary = service
            ? `${service}: ${byService.get(service)!.length} instance(s) · ${etcdLine(health)}`
            : `${names.length} service(s), ${total} instance(s) · ${etcdLine(health)}`;
          const details = listing.problems.map((p) => `unreadable registry entry ${p.key}: ${p.problem}`);
          if (containers?.problem) details.push(containers.problem);
          if (hap?.problem) details.push(hap.problem);
          details.push(...agents.problems);
          if (agents.table) tables.push(agents.table);
          return { ok: true, summary, ...(details.length ? { details } : {}), tables };
        },
      }),
    ],
  };
}

function row(i: Instance, now: number): string[] {
  return [
    i.instance,
    i.address,
    i.state?.state ?? 'ready',
    String(i.state?.weight ?? 100),
    i.lease ? 'yes' : '-',
    i.state?.by ?? '-',
    i.state ? age(now - Date.parse(i.state.at)) : '-',
  ];
}

function etcdLine(h: EtcdHealth): string {
  const up = h.endpoints.filter((e) => e.ok);
  const version = up.find((e) => e.version)?.version;
  return `etcd ok (${up.length}/${h.endpoints.length} endpoints${version ? `, v${version}` : ''})`;
}

function etcdDown(h: EtcdHealth): Reply {
  return {
    ok: false,
    code: 'E_UNAVAILABLE',
    summary: 'etcd is unreachable: the registry cannot be read',
    details: h.endpoints.map((e) => `${e.endpoint}: ${e.ok ? 'ok' : (e.error ?? 'down')}`),
  };
}

function age(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const it of items) {
    const k = key(it);
    const list = m.get(k);
    if (list) list.push(it);
    else m.set(k, [it]);
  }
  return m;
}
