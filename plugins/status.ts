import type {
  AgentReport,
  ApplyResult,
  EtcdHealth,
  HistoryFacade,
  Instance,
  Plugin,
  PluginApi,
  Reply,
  Routing,
  StatusColumns,
  Table,
  WatcherRecord,
} from '../src/plugin.js';

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
export default function status(api: PluginApi): Plugin {
  const { z, args } = api;
  const fail = api.errors.fail;
  return {
    name: 'status',
    commands: [
      api.defineCommand({
        name: 'status',
        summary: `instances, their state and address, desired replicas, etcd health; one row per service when the registry is large, ${PAGE_SIZE} rows a page`,
        args: z.object({ service: args.service.optional(), page: args.int(1, 1_000_000).optional().describe('N') }),
        positionals: ['service'],
        serviceArg: 'service',
        async handler(ctx, { service, page = 1 }) {
          const { registry } = ctx;
          const health = await registry.health();
          if (!health.ok) return etcdDown(health);
          const listing = await registry.list(service);
          const byService = groupBy(listing.instances, (i) => i.service);
          if (service && !byService.has(service)) byService.set(service, []);
          // Container state per instance, when a Docker engine is configured.
          const containers = await ctx.orchestration.statusColumns(service);
          for (const s of containers?.services ?? []) if (!byService.has(s)) byService.set(s, []);
          // HAProxy state and sessions per instance (this bot's own agent) and every agent's last apply.
          const [hap, agents] = await Promise.all([haproxyColumns(ctx.routing), agentsView(ctx.routing)]);
          // `switchyard watch` processes: the lease column names the host whose watcher holds an instance.
          const watchers = (await registry.watchers?.().catch(() => undefined)) ?? [];
          const hostOf = new Map(watchers.map((w) => [w.lease, w.host]));
          const names = [...byService.keys()].sort();
          const total = listing.instances.length;
          const large = !service && (total > DETAIL_MAX_INSTANCES || names.length > DETAIL_MAX_SERVICES);
          // Without a service, pages are pages of services (a small registry has only one);
          // only the services shown are asked for their desired replicas.
          const shownNames = service ? names : pageOf(fail, names, page, 'services', 'status');
          const desired = new Map(await Promise.all(shownNames.map(async (n) => [n, await registry.getDesired(n)] as const)));

          const now = Date.now();
          const details: string[] = [];
          const tables: NonNullable<Reply['tables']> = [];
          if (large) {
            tables.push({ title: `services ${pageTitle(page, names.length)}`, table: servicesTable(shownNames, byService, desired, containers, hap) });
            details.push(
              `one row per service (more than ${DETAIL_MAX_INSTANCES} instances or ${DETAIL_MAX_SERVICES} services); \`status <service>\` lists a service's instances`,
            );
            if (page * PAGE_SIZE < names.length) details.push(`next page: \`status --page ${page + 1}\``);
          } else {
            for (const name of shownNames) {
              const list = byService.get(name)!.sort((a, b) => a.instance.localeCompare(b.instance));
              const ready = list.filter((i) => stateOf(i) === 'ready').length;
              const want = desired.get(name);
              const rows = [
                ...list.map((i) => [...row(i, now, hostOf), ...(containers?.cells(i.service, i.instance) ?? []), ...(hap?.cells(name, i.instance) ?? [])]),
                ...(containers?.unregistered(name, new Set(list.map((i) => i.instance))) ?? []).map((u) => [
                  u.instance,
                  '-',
                  'unregistered',
                  '-',
                  '-',
                  '-',
                  '-',
                  ...u.cells,
                  ...(hap?.cells(name, u.instance) ?? []),
                ]),
              ];
              // A service's instances come a page at a time: Slack shows a few hundred rows at most.
              const shown = service ? pageOf(fail, rows, page, 'instances', `status ${name}`) : rows;
              tables.push({
                title: `${name}: ${list.length} instance${list.length === 1 ? '' : 's'}, ${ready} ready${want ? `, desired ${want.replicas}` : ''}${rows.length > PAGE_SIZE ? ` · rows ${pageTitle(page, rows.length)}` : ''}`,
                table: {
                  header: ['instance', 'address', 'state', 'weight', 'lease', 'changed by', 'since', ...(containers?.header ?? []), ...(hap?.header ?? [])],
                  rows: shown,
                },
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
          if (watchers.length) tables.push(watchersTable(watchers, now));
          if (service) {
            const recent = await lastChanges(ctx.history, service);
            if (recent.table) tables.push(recent.table);
            if (recent.problem) details.push(recent.problem);
          }
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
  containers: StatusColumns | undefined,
  hap: HaproxyColumns | undefined,
): Table {
  const header = [
    'service',
    'instances',
    'ready',
    'drain',
    'maint',
    'desired',
    ...(containers ? ['running', 'unregistered'] : []),
    ...(hap ? ['UP in haproxy', 'sessions'] : []),
  ];
  const rows = names.map((name) => {
    const list = byService.get(name) ?? [];
    const count = (state: string) => list.filter((i) => stateOf(i) === state).length;
    const cells = [
      name,
      String(list.length),
      String(count('ready')),
      String(count('drain')),
      String(count('maint')),
      String(desired.get(name)?.replicas ?? '-'),
    ];
    if (containers) {
      const unregistered = containers.unregistered(name, new Set(list.map((i) => i.instance)));
      const running =
        list.filter((i) => containers.cells(name, i.instance)[0]?.startsWith('running')).length +
        unregistered.filter((u) => u.cells[0]?.startsWith('running')).length;
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
function pageOf<T>(fail: PluginApi['errors']['fail'], items: readonly T[], page: number, what: string, command: string): T[] {
  const pages = Math.max(1, Math.ceil(items.length / PAGE_SIZE));
  if (page > pages)
    fail(
      'E_BAD_ARGS',
      `page ${page} is past the end: ${items.length} ${what}, ${pages} page${pages === 1 ? '' : 's'} of ${PAGE_SIZE} (\`${command} --page ${pages}\`)`,
    );
  return items.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE);
}

/** "1–100 of 10000 (page 1 of 100)" */
function pageTitle(page: number, count: number): string {
  const first = Math.min(count, (page - 1) * PAGE_SIZE + 1);
  const last = Math.min(count, page * PAGE_SIZE);
  return `${first}–${last} of ${count} (page ${page} of ${Math.max(1, Math.ceil(count / PAGE_SIZE))})`;
}

const stateOf = (i: Instance) => i.state?.state ?? 'ready';
/** A raw etcd key may hold control characters: quoted as JSON so it cannot pass for a line of ours. */
const describeProblem = (p: { key: string; problem: string }) => `${JSON.stringify(p.key.length > 200 ? `${p.key.slice(0, 200)}…` : p.key)}: ${p.problem}`;

function row(i: Instance, now: number, hostOf: ReadonlyMap<string, string>): string[] {
  const watcher = i.lease ? hostOf.get(i.lease) : undefined;
  return [
    i.instance,
    i.address,
    stateOf(i),
    String(i.state?.weight ?? 100),
    watcher ? `watch@${watcher}` : i.lease ? 'yes' : '-',
    i.state?.by ?? '-',
    i.state ? age(now - Date.parse(i.state.at)) : '-',
  ];
}

/** Watchers alive now (a dead one's record expires with its registrations). */
function watchersTable(watchers: readonly WatcherRecord[], now: number): { title: string; table: Table } {
  return {
    title: `watchers: ${watchers.length}`,
    table: {
      header: ['host', 'advertise', 'instances', 'last reconcile'],
      rows: watchers.map((w) => [w.host, w.advertise, String(w.registered), w.lastReconcile ? `${age(now - Date.parse(w.lastReconcile))} ago` : 'not yet']),
    },
  };
}

function etcdLine(h: EtcdHealth): string {
  const up = h.endpoints.filter((e) => e.ok);
  const version = up.find((e) => e.version)?.version;
  const down = h.endpoints.filter((e) => !e.ok).map((e) => `${e.endpoint}: ${e.error ?? 'down'}`);
  return `etcd ok (${up.length}/${h.endpoints.length} endpoints${version ? `, v${version}` : ''}${down.length ? `; not answering: ${down.join('; ')}` : ''})`;
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

interface HaproxyColumns {
  header: string[];
  cells(service: string, instance: string): string[];
  /** Set when HAProxy could not be asked. */
  problem?: string;
}

/** HAProxy's state and sessions per instance, from this bot's own agent; undefined without one. */
async function haproxyColumns(routing: Routing): Promise<HaproxyColumns | undefined> {
  const local = routing.local;
  if (!local) return undefined;
  const header = ['haproxy', 'sessions'];
  try {
    const byKey = new Map((await local.servers()).map((s) => [`${s.service}/${s.instance}`, s]));
    // Not in HAProxy: not applied yet, or left out (see the agent's warnings).
    return { header, cells: (service, instance) => ((s) => (s ? [s.status, String(s.sessions)] : ['-', '-']))(byKey.get(`${service}/${instance}`)) };
  } catch (err) {
    return { header, cells: () => ['?', '?'], problem: `haproxy ${local.agentId}: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** One row per agent with its last apply; unreadable reports become problems. */
async function agentsView(routing: Routing): Promise<{ table?: { title: string; table: Table }; problems: string[] }> {
  let list: AgentReport[];
  try {
    list = await routing.agents();
  } catch (err) {
    return { problems: [`agents: ${err instanceof Error ? err.message : String(err)}`] };
  }
  return agentsTable(list, (r) => routing.describe(r));
}

export function agentsTable(
  list: readonly AgentReport[],
  describe: (r: ApplyResult) => string,
  now = Date.now(),
): { table?: { title: string; table: Table }; problems: string[] } {
  const problems: string[] = [];
  const rows: string[][] = [];
  for (const r of list) {
    if ('problem' in r) {
      problems.push(`unreadable apply result of agent ${r.agentId}: ${r.problem}`);
      rows.push([r.agentId, '?', 'unreadable result', '-']);
      continue;
    }
    const text = describe(r.result);
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

/** The service's last three recorded changes (`history <service>` lists more). */
async function lastChanges(history: HistoryFacade, service: string): Promise<{ table?: { title: string; table: Table }; problem?: string }> {
  try {
    const { entries } = await history.list({ service, limit: 3 });
    if (entries.length === 0) return {};
    const rows = entries.map((e) => [e.at.slice(0, 19).replace('T', ' '), `${e.subject} ${e.what}`, e.by ?? '-', e.command ? `${e.via} ${e.command}` : e.via]);
    return { table: { title: `last changes of ${service} (history ${service} for more)`, table: { header: ['when (UTC)', 'change', 'by', 'via'], rows } } };
  } catch (err) {
    // Status answers without history rather than not at all.
    return { problem: `change history: ${err instanceof Error ? err.message : String(err)}` };
  }
}
