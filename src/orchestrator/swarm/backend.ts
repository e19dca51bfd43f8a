/**
 * Swarm as an orchestration backend: the scale, the task watcher and reconcile share this,
 * so the syncs of one service never interleave (a watcher tick deregistering what a scale is
 * registering).
 */
import type { SwarmEngine } from '../../adapters/docker/swarm.js';
import type { OrchestratorDeps } from '../deps.js';
import { swarmView, syncRegistrations, type SwarmServiceView } from './sync.js';

export interface SyncOutcome {
  view: SwarmServiceView;
  changes: string[];
  problems: string[];
}

export type SwarmDeps = OrchestratorDeps & { swarm: SwarmEngine };

export class SwarmBackend {
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(readonly deps: SwarmDeps) {}

  /** Services configured with `backend: swarm`. */
  services(): string[] {
    return Object.entries(this.deps.config.services)
      .filter(([, s]) => s.backend === 'swarm')
      .map(([name]) => name)
      .sort();
  }

  /** Look at the tasks and make the registry agree, after any sync of the same service already under way. */
  sync(service: string, actor: string): Promise<SyncOutcome> {
    const prev = this.chains.get(service) ?? Promise.resolve();
    const next = prev
      .catch(() => undefined)
      .then(async () => {
        const view = await swarmView(this.deps, this.deps.swarm, service);
        const { changes, problems } = await syncRegistrations(this.deps, view, service, actor);
        // What was just written is what the registry holds now.
        return { view: changes.length ? await swarmView(this.deps, this.deps.swarm, service) : view, changes, problems };
      });
    this.chains.set(service, next);
    void next
      .finally(() => {
        if (this.chains.get(service) === next) this.chains.delete(service);
      })
      .catch(() => undefined);
    return next;
  }
}

const backends = new WeakMap<OrchestratorDeps, SwarmBackend>();

/** The one backend per deps: the facade's scales and the watcher must share its sync queue. */
export function swarmBackendOf(deps: OrchestratorDeps): SwarmBackend | undefined {
  if (!deps.swarm) return undefined;
  const known = backends.get(deps);
  if (known) return known;
  const b = new SwarmBackend(deps as SwarmDeps);
  backends.set(deps, b);
  return b;
}
