import { z } from 'zod';
import { fail } from '../src/core/errors.js';
import { intArg, serviceName } from '../src/core/names.js';
import { describeProblem } from '../src/core/quote.js';
import { defineCommand, type Plugin } from '../src/core/plugin.js';
import type { EtcdHealth, Instance } from '../src/core/registry.js';
import type { Reply, Table } from '../src/core/reply.js';
import { containerColumns, type ContainerColumns } from '../src/orchestrator/status-columns.js';
import { agentsView, haproxyColumns, type HaproxyColumns } from '../src/agent/status-view.js';

/**
 * Beyond these, `status` without a service shows one row per service: a listing of
 * thousands of instances is cut by Slack anyway (50 blocks of 3000 chars), and reading it
 * whole costs the bot memory for nobody's benefit.
 */
export const DETAIL_MAX_INSTANCES = 100;
export const DETAIL_MAX_SERVICES = 20;
/** Rows per page of `status <service>` (and of the per-service summary): a few Slack blocks. */
export const PAGE_SIZE = 100;
/** Unreadable registry entries listed by name; the rest are counted. */
const MAX_PROBLEMS = 20;

/** `status [service]`: what the registry holds, and whether etcd itself is healthy. */
export default function statusPlugin(): Plugin {
  return {
    name: 'status',
    commands: [
      defineCommand({
        name: 'status',
        summary: `instances, their state and address, desired replicas, etcd health; one row per service when the registry is large, ${PAGE_SIZE} rows a page`,
        args: z.object({ service: serviceName.optional(), page: intArg(1, 1_000_000).optional().describe('N') }),
        positionals: ['service'],
        serviceArg: 'service',
        mutating: false,
        async handler(ctx, { service, page = 1 }) {
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
          const total = listing.instances.length;
          const large = !service && (total > DETAIL_MAX_INSTANCES || names.length > DETAIL_MAX_SERVICES);
          // Without a service, pages are pages of services (a small registry has only one);
          // only the services shown are asked for their desired replicas.
          const shownNames = service ? names : pageOf(names, page, 'services', 'status');
          const desired = new Map(await Promise.all(shownNames.map(async (n) => [n, await registry.getDesired(n)] as const)));

          const now = Date.now();
          const details: string[] = [];
          const tables: NonNullable<Reply['tables']> = [];
          if (large) {
            tables.push({ title: `services ${pageTitle(page, names.length)}`, table: servicesTable(shownNames, byService, desired, containers, hap) });
            details.push(`one row per service (more than ${DETAIL_MAX_INSTANCES} instances or ${DETAIL_MAX_SERVICES} services); \`status <service>\` lists a service's instances`);
            if (page * PAGE_SIZE < names.length) details.push(`next page: \`status --page ${page + 1}\``);
          } else {
            for (const name of shownNames) {
              const list = byService.get(name)!.sort((a, b) => a.instance.localeCompare(b.instance));
              const ready = list.filter((i) => stateOf(i) === 'ready').length;
              const want = desired.get(name);
              const rows = [
                ...list.map((i) => [...row(i, now), ...(containers?.cells(i.service, i.instance) ?? []), ...(hap?.cells(name, i.instance) ?? [])]),
                ...(containers?.unregistered(name, new Set(list.map((i) => i.instance))) ?? []).map((u) => [u.instance, '-', 'unregistered', '-', '-', '-', '-', ...u.cells, ...(hap?.cells(name, u.instance) ?? [])]),
              ];
              // A service's instances come a page at a time: Slack shows a few hundred rows at most.
              const shown = service ? pageOf(rows, page, 'instances', `status ${name}`) : rows;
              tables.push({
                title: `${name}: ${list.length} instance${list.length === 1 ? '' : 's'}, ${ready} ready${want ? `, desired ${want.replicas}` : ''}${rows.length > PAGE_SIZE ? ` · rows ${pageTitle(page, rows.length)}` : ''}`,
                table: { header: ['instance', 'address', 'state', 'weight', 'lease', 'changed by', 'since', ...(containers?.header ?? []), ...(hap?.header ?? [])], rows: shown },
              });
              if (service && page * PAGE_SIZE < rows.length) details.push(`next page: \`status ${name} --page ${page + 1}\``);
            }
          }
          const summary = service
            ? `${service}: ${byService.get(service)!.length} instance(s) · ${etcdLine(health)}`
            : `${names.length} service(s), ${total} instance(s) · ${etcdLine(health)}`;
          const problems = listing.problems.map((p) => `unreadable registry entry ${describeProblem(p)}`);
          details.push(...problems.slice(0, MAX_PROBLEMS));
          if (problems.length > MAX_PROBLEMS) details.push(`… and ${problems.length - MAX_PROBLEMS} more unreadable registry entries`);
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

/** One row per service: counts instead of instances, for a registry too large to list whole. */
function servicesTable(
  names: readonly string[],
  byService: ReadonlyMap<string, Instance[]>,
  desired: ReadonlyMap<string, { replicas: number } | undefined>,
  containers: ContainerColumns | undefined,
  hap: HaproxyColumns | undefined,
): Table {
  const header = ['service', 'instances', 'ready', 'drain', 'maint', 'desired', ...(containers ? ['running', 'unregistered'] : []), ...(hap ? ['UP in haproxy', 'sessions'] : [])];
  const rows = names.map((name) => {
    const list = byService.get(name) ?? [];
    const count = (state: string) => list.filter((i) => stateOf(i) === state).length;
    const cells = [name, String(list.length), String(count('ready')), String(count('drain')), String(count('maint')), String(desired.get(name)?.replicas ?? '-')];
    if (containers) {
      const unregistered = containers.unregistered(name, new Set(list.map((i) => i.instance)));
      const running = list.filter((i) => containers.cells(name, i.instance)[0]?.startsWith('running')).length + unregistered.filter((u) => u.cells[0]?.startsWith('running')).length;
      cells.push(String(running), String(unregistered.length));
    }
    if (hap) {
      const stats = list.map((i) => hap.cells(name, i.instance));
      cells.push(String(stats.filter(([status]) => status === 'UP').length), String(stats.reduce((n, [, scur]) => n + (Number(scur) || 0), 0)));
    }
    return cells;
  });
  return { header, rows };
}

/** The `page`-th slice of PAGE_SIZE items; a page past the end is refused, naming the last one. */
function pageOf<T>(items: readonly T[], page: number, what: string, command: string): T[] {
  const pages = Math.max(1, Math.ceil(items.length / PAGE_SIZE));
  if (page > pages) fail('E_BAD_ARGS', `page ${page} is past the end: ${items.length} ${what}, ${pages} page${pages === 1 ? '' : 's'} of ${PAGE_SIZE} (\`${command} --page ${pages}\`)`);
  return items.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE);
}

/** "1–100 of 10000 (page 1 of 100)" */
function pageTitle(page: number, count: number): string {
  const first = Math.min(count, (page - 1) * PAGE_SIZE + 1);
  const last = Math.min(count, page * PAGE_SIZE);
  return `${first}–${last} of ${count} (page ${page} of ${Math.max(1, Math.ceil(count / PAGE_SIZE))})`;
}

const stateOf = (i: Instance) => i.state?.state ?? 'ready';

function row(i: Instance, now: number): string[] {
  return [
    i.instance,
    i.address,
    stateOf(i),
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
