import type { OrchestratorDeps, Progress } from './deps.js';
import type { InstanceFailure } from './failure.js';
import { launchInstances, type StartedInstance } from './launch.js';
import { describeHolder } from './lock.js';
import { pickVictims, retireInstances } from './retire.js';
import { tidyService } from './tidy.js';
import { serviceView, type ServiceView } from './view.js';

export interface ScaleRequest {
  service: string;
  replicas: number;
  /** Who asked (a user ID): recorded in the desired record and the registrations. */
  actor: string;
  requestId?: string;
  progress: Progress;
}

export interface ScaleResult {
  service: string;
  replicas: number;
  /** Containers running before the scale (after tidying up). */
  before: number;
  started: StartedInstance[];
  retired: string[];
  failed: InstanceFailure[];
  /** Leftovers put right before scaling (stopped containers, stale registrations…). */
  tidied: string[];
  problems: string[];
  /** The service as it is at the end. */
  after: ServiceView;
}

/**
 * Converge one service to N containers under its lock. The desired count is written
 * first, so a crash midway leaves the intent for reconcile to report; up and down are
 * both per instance, so a partial failure keeps what worked and names what did not.
 */
export async function scaleService(deps: OrchestratorDeps, req: ScaleRequest): Promise<ScaleResult> {
  const { service, replicas, actor, progress } = req;
  const svc = deps.config.services[service];
  if (!svc) throw new Error(`scaleService: ${service} is not configured`); // the command checks first
  const lock = await deps.locks.acquire(
    service,
    { by: actor, what: `scale ${service} ${replicas}`, ...(req.requestId ? { requestId: req.requestId } : {}) },
    { waitMs: deps.settings.lockWaitMs, onWait: (h) => progress(`waiting for ${describeHolder(h)} to finish`) },
  );
  try {
    await deps.registry.setDesired(service, replicas, actor);
    const tidy = await tidyService(deps, service, { actor, waitForStarting: true });
    for (const c of tidy.changes) progress(c);
    const running = tidy.view.managed.filter((iv) => iv.running);
    const result: ScaleResult = {
      service,
      replicas,
      before: running.length,
      started: [],
      retired: [],
      failed: [],
      tidied: tidy.changes,
      problems: tidy.problems,
      after: tidy.view,
    };
    if (running.length < replicas) {
      const count = replicas - running.length;
      progress(`${service}: ${running.length} running; starting ${count} more`);
      const taken = new Set([...tidy.view.registrations.map((r) => r.instance), ...tidy.view.managed.map((iv) => iv.instance)]);
      const usedPorts = new Set(running.flatMap((iv) => iv.running!.ports.map((p) => p.hostPort)));
      const out = await launchInstances(deps, service, svc, count, { actor, progress, taken, usedPorts });
      result.started = out.started;
      result.failed = out.failed;
    } else if (running.length > replicas) {
      const victims = pickVictims(running, running.length - replicas);
      progress(`${service}: ${running.length} running; taking out ${victims.map((v) => v.instance).join(', ')}`);
      const out = await retireInstances(deps, service, victims, { actor, progress });
      result.retired = out.retired;
      result.failed = out.failed;
    }
    result.after = await serviceView(deps, service);
    if (!lock.held) result.problems.push(`the lock on ${service} was lost midway (etcd unreachable past its lease): another change may have overlapped`);
    return result;
  } finally {
    await lock.release();
  }
}
