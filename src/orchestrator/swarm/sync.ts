/**
 * Registrations ↔ running Swarm tasks, for one service: each running task is its own
 * instance `<service>-<slot>` at its node's address and the task's host-mode port, so
 * HAProxy routes to and drains tasks one by one. Only registrations marked as ours are ever
 * removed; a service Swarm has without our owner label is never looked at.
 */
import type { SwarmEngine, SwarmNode, SwarmService, SwarmTask } from '../../adapters/docker/swarm.js';
import { LABEL_OWNER } from '../../adapters/docker/types.js';
import type { Instance } from '../../core/registry.js';
import type { OrchestratorDeps } from '../deps.js';
import { joinHostPort } from '../naming.js';
import { isOwned, ownedBy } from '../ownership.js';

export const taskInstance = (service: string, slot: number) => `${service}-${slot}`;

export interface TaskView {
  instance: string;
  task: SwarmTask;
  node: SwarmNode | undefined;
  /** Where it is reached; undefined until Swarm reports its published port. */
  address: string | undefined;
}

export interface SwarmServiceView {
  service: SwarmService | undefined;
  /** True when the service exists but carries another (or no) owner label. */
  foreign: boolean;
  /** The current task of each slot (the newest), running or not. */
  slots: TaskView[];
  /** Slots whose current task runs and has an address. */
  running: TaskView[];
  /** Tasks Swarm is shutting down that still run (scale-down is done when none is left). */
  stopping: number;
  registrations: Instance[];
}

export function isOwnedService(s: SwarmService, owner: string): boolean {
  return s.Spec.Labels?.[LABEL_OWNER] === owner;
}

const rank = (t: SwarmTask) => (t.state === 'running' && t.desiredState === 'running' ? 1 : 0);

export async function swarmView(deps: OrchestratorDeps, swarm: SwarmEngine, service: string): Promise<SwarmServiceView> {
  const [svc, listing] = await Promise.all([swarm.inspectService(service), deps.registry.list(service)]);
  const registrations = listing.instances.filter((r) => r.service === service);
  if (!svc || !isOwnedService(svc, deps.settings.owner)) return { service: svc, foreign: !!svc, slots: [], running: [], stopping: 0, registrations };
  const [tasks, nodes] = await Promise.all([swarm.tasks(svc.ID), swarm.nodes()]);
  const port = deps.config.services[service]?.port;
  const bySlot = new Map<number, SwarmTask>();
  for (const t of tasks) {
    const prev = bySlot.get(t.slot);
    // A slot's running task speaks for it; otherwise the newest attempt (with its error).
    if (!prev || rank(t) > rank(prev) || (rank(t) === rank(prev) && (t.since?.getTime() ?? 0) > (prev.since?.getTime() ?? 0))) bySlot.set(t.slot, t);
  }
  const slots = [...bySlot.values()]
    .sort((a, b) => a.slot - b.slot)
    .map((task) => {
      const node = nodes.get(task.nodeId);
      const hostPort = port === undefined ? undefined : task.published.get(port);
      const address = node?.addr && hostPort ? joinHostPort(node.addr, hostPort) : undefined;
      return { instance: taskInstance(service, task.slot), task, node, address };
    });
  const running = slots.filter((s) => s.task.state === 'running' && s.task.desiredState === 'running' && s.address !== undefined);
  const stopping = tasks.filter((t) => t.desiredState !== 'running' && (t.state === 'running' || t.state === 'starting')).length;
  return { service: svc, foreign: false, slots, running, stopping, registrations };
}

/**
 * Make the registry match the running tasks. Returns what changed, as lines. A registration
 * of the same name that is not ours is left alone and reported.
 */
export async function syncRegistrations(
  deps: OrchestratorDeps,
  view: SwarmServiceView,
  service: string,
  actor: string,
): Promise<{ changes: string[]; problems: string[] }> {
  const { registry, settings } = deps;
  const by = ownedBy(actor, settings.owner);
  const changes: string[] = [];
  const problems: string[] = [];
  if (view.foreign) return { changes, problems };
  const want = new Map(view.running.map((t) => [t.instance, t]));
  for (const r of view.registrations) {
    if (!isOwned(r.state?.by, settings.owner)) continue;
    const t = want.get(r.instance);
    if (t && t.address === r.address) continue;
    // Only the registration this view saw: another replica's watcher (or a scale) syncing the
    // same service may have registered the replacement since, and it must stay.
    if (await registry.deregister(service, r.instance, { address: r.address }))
      changes.push(`${service}/${r.instance} deregistered (${t ? `task moved to ${t.address}` : 'no running task'})`);
  }
  const registered = new Map(view.registrations.map((r) => [r.instance, r]));
  for (const t of want.values()) {
    const r = registered.get(t.instance);
    if (r && r.address === t.address && isOwned(r.state?.by, settings.owner)) continue;
    if (r && !isOwned(r.state?.by, settings.owner)) {
      problems.push(
        `${service}/${t.instance} is registered by someone else (${r.state?.by ?? 'no state record'}): task ${t.task.id.slice(0, 12)} left unregistered`,
      );
      continue;
    }
    await registry.register(service, t.instance, t.address!, { by });
    changes.push(`${service}/${t.instance} registered at ${t.address} (task ${t.task.id.slice(0, 12)} on ${t.node?.hostname ?? t.task.nodeId})`);
  }
  return { changes, problems };
}
