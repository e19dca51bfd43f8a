import type { ContainerEngine, ContainerInfo, ManagedContainer } from '../adapters/docker/types.js';
import type { StatusColumns } from '../core/facades.js';
import type { Logger } from '../core/log.js';
import { asSwitchyardError } from './failure.js';
import { restartsOf } from './naming.js';

const HEADER = ['container', 'image', 'uptime', 'restarts'];

/**
 * The container half of `status`: extra columns per instance ('-' when no container of ours
 * backs it: registered by hand), and rows for containers not registered.
 */
export async function containerColumns(engine: ContainerEngine, owner: string, service: string | undefined, log: Logger): Promise<StatusColumns> {
  let list: ManagedContainer[];
  try {
    list = await engine.listManaged(owner, service);
  } catch (err) {
    const unknown = HEADER.map(() => '?');
    return { header: HEADER, cells: () => unknown, services: [], unregistered: () => [], problem: `docker: ${asSwitchyardError(err).message}` };
  }
  // Uptime and restarts need an inspect; a container that vanished meanwhile just shows less.
  const infos = new Map<string, ContainerInfo>();
  await Promise.all(
    list.map(async (c) => {
      try {
        infos.set(c.id, await engine.inspect(c.id));
      } catch (err) {
        log.debug({ err, id: c.id }, 'status: could not inspect a container');
      }
    }),
  );
  const now = Date.now();
  const cellsOf = (c: ManagedContainer): string[] => {
    const info = infos.get(c.id);
    const health = info?.hasHealthcheck && info.health !== 'none' ? ` (${info.health})` : '';
    const uptime = c.status === 'running' && info?.startedAt ? age(now - info.startedAt.getTime()) : '-';
    const restarts = restartsOf(c.name, c.instance) + (info?.restartCount ?? 0);
    return [`${c.status}${health}`, c.image, uptime, String(restarts)];
  };
  // The running container speaks for its instance; otherwise the newest.
  const byInstance = new Map<string, ManagedContainer>();
  for (const c of [...list].sort((a, b) => a.created.getTime() - b.created.getTime())) {
    const key = `${c.service}/${c.instance}`;
    const prev = byInstance.get(key);
    if (prev?.status !== 'running' || c.status === 'running') byInstance.set(key, c);
  }
  return {
    header: HEADER,
    cells: (svc, instance) => {
      const c = byInstance.get(`${svc}/${instance}`);
      return c ? cellsOf(c) : ['-', '-', '-', '-'];
    },
    services: [...new Set(list.map((c) => c.service))],
    unregistered: (svc, registered) =>
      [...byInstance.values()].filter((c) => c.service === svc && !registered.has(c.instance)).map((c) => ({ instance: c.instance, cells: cellsOf(c) })),
  };
}

function age(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}
