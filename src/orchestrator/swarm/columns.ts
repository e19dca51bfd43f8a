/**
 * The task half of `status` for `backend: swarm` services: node, slot, state, error and
 * uptime per task; tasks whose slot is not registered (starting, failed) get rows of their own.
 */
import type { StatusColumns } from '../../core/facades.js';
import { asSwitchyardError } from '../failure.js';
import type { SwarmBackend } from './backend.js';
import { swarmView, type TaskView } from './sync.js';

export const SWARM_HEADER = ['node', 'slot', 'task', 'error', 'uptime'];

export async function swarmColumns(backend: SwarmBackend, only: string | undefined): Promise<StatusColumns> {
  const services = backend.services().filter((s) => only === undefined || s === only);
  const slots = new Map<string, TaskView[]>();
  const problems: string[] = [];
  const now = Date.now();
  await Promise.all(
    services.map(async (service) => {
      try {
        const view = await swarmView(backend.deps, backend.deps.swarm, service);
        const desired = view.service?.Spec.Mode.Replicated?.Replicas;
        if (view.foreign) problems.push(`swarm: ${service} exists but is not ours (no owner label)`);
        else if (view.service) problems.push(`swarm: ${service} desired ${desired ?? '-'}, running ${view.running.length}`);
        slots.set(service, view.slots);
      } catch (err) {
        problems.push(`swarm: ${service}: ${asSwitchyardError(err).message}`);
      }
    }),
  );
  const cellsOf = (t: TaskView): string[] => {
    const up = t.task.state === 'running' && t.task.since ? age(now - t.task.since.getTime()) : '-';
    return [t.node?.hostname ?? (t.task.nodeId.slice(0, 12) || '-'), String(t.task.slot), t.task.state, t.task.error || '-', up];
  };
  return {
    header: SWARM_HEADER,
    cells: (service, instance) => {
      const t = slots.get(service)?.find((s) => s.instance === instance);
      return t ? cellsOf(t) : SWARM_HEADER.map(() => '-');
    },
    services: [...slots.keys()].filter((s) => (slots.get(s) ?? []).length > 0),
    unregistered: (service, registered) =>
      (slots.get(service) ?? []).filter((t) => !registered.has(t.instance)).map((t) => ({ instance: t.instance, cells: cellsOf(t) })),
    ...(problems.length ? { problem: problems.sort().join('; ') } : {}),
  };
}

/**
 * One set of columns for a `status` that spans both backends: each backend's columns side by
 * side, '-' where the other backend runs the service.
 */
export function joinColumns(docker: StatusColumns | undefined, swarm: StatusColumns, isSwarm: (service: string) => boolean): StatusColumns {
  if (!docker) return swarm;
  const blankD = docker.header.map(() => '-');
  const blankS = swarm.header.map(() => '-');
  const problem = [docker.problem, swarm.problem].filter(Boolean).join('; ');
  return {
    header: [...docker.header, ...swarm.header],
    cells: (s, i) => (isSwarm(s) ? [...blankD, ...swarm.cells(s, i)] : [...docker.cells(s, i), ...blankS]),
    services: [...new Set([...docker.services, ...swarm.services])],
    unregistered: (s, reg) =>
      isSwarm(s)
        ? swarm.unregistered(s, reg).map((r) => ({ instance: r.instance, cells: [...blankD, ...r.cells] }))
        : docker.unregistered(s, reg).map((r) => ({ instance: r.instance, cells: [...r.cells, ...blankS] })),
    ...(problem ? { problem } : {}),
  };
}

function age(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
