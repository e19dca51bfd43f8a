import { launchContainer } from '../adapters/docker/launch.js';
import type { ContainerSpec } from '../adapters/docker/types.js';
import { scalableService, type ServiceConfig } from '../config/schema.js';
import { isSwitchyardError, SwitchyardError } from '../core/errors.js';
import type { OrchestratorDeps, Progress } from './deps.js';
import { asSwitchyardError, type InstanceFailure } from './failure.js';
import { settleAll } from './limit.js';
import { containerName, joinHostPort, newInstanceName } from './naming.js';
import { ownedBy } from './ownership.js';

export interface StartedInstance {
  instance: string;
  containerId: string;
  address: string;
}

export interface LaunchOutcome {
  started: StartedInstance[];
  failed: InstanceFailure[];
}

/** Enough to keep the engine busy without a thousand-container stampede on one host. */
const PARALLEL = 16;

/**
 * One instance: create → start → running (healthy, with a HEALTHCHECK) → register. The
 * address is registered only once the container runs; a failure at any step leaves no
 * container behind (launchContainer cleans up, and so does a failed registration).
 */
export async function launchInstance(
  deps: OrchestratorDeps,
  service: string,
  svc: ServiceConfig,
  opts: { instance: string; restarts: number; actor: string; hostPort?: number },
): Promise<StartedInstance> {
  const { engine, registry, settings } = deps;
  // `scale` refuses routed-only services first; restarts and reconcile end up here too.
  const { image, port } = scalableService(service, svc);
  const spec: ContainerSpec = {
    service,
    instance: opts.instance,
    owner: settings.owner,
    image,
    port,
    hostIp: svc.hostIp,
    env: svc.env,
    name: containerName(opts.instance, opts.restarts),
    ...(svc.cmd && svc.cmd.length > 0 ? { cmd: svc.cmd } : {}),
    ...(opts.hostPort !== undefined ? { hostPort: opts.hostPort } : {}),
  };
  const launched = await launchContainer(engine, spec, { timeoutMs: settings.startTimeoutMs });
  const address = joinHostPort(launched.hostIp, launched.hostPort);
  try {
    await registry.register(service, opts.instance, address, { by: ownedBy(opts.actor, settings.owner) });
  } catch (err) {
    await engine.remove(launched.id, { force: true }).catch((cleanupErr: unknown) => {
      if (!isSwitchyardError(cleanupErr, 'E_NOT_FOUND')) {
        deps.log.error({ err: cleanupErr, instance: opts.instance }, 'could not remove a container whose registration failed; reconcile will');
      }
    });
    throw err;
  }
  return { instance: opts.instance, containerId: launched.id, address };
}

/** Host ports for `count` new containers: Docker picks when no range is configured. */
function allocatePorts(svc: ServiceConfig, count: number, used: ReadonlySet<number>): (number | undefined)[] {
  if (!svc.hostPorts) return new Array<undefined>(count).fill(undefined);
  const free: number[] = [];
  for (let p = svc.hostPorts.from; p <= svc.hostPorts.to && free.length < count; p++) if (!used.has(p)) free.push(p);
  return Array.from({ length: count }, (_, i) => free[i]);
}

/** `count` new instances in parallel; each succeeds or fails on its own. */
export async function launchInstances(
  deps: OrchestratorDeps,
  service: string,
  svc: ServiceConfig,
  count: number,
  opts: { actor: string; progress: Progress; taken: Set<string>; usedPorts: ReadonlySet<number> },
): Promise<LaunchOutcome> {
  const names = Array.from({ length: count }, () => {
    const name = newInstanceName(service, opts.taken);
    opts.taken.add(name);
    return name;
  });
  const ports = allocatePorts(svc, count, opts.usedPorts);
  let done = 0;
  const results = await settleAll(names, PARALLEL, async (instance, i) => {
    if (svc.hostPorts && ports[i] === undefined) {
      const { from, to } = svc.hostPorts;
      throw new SwitchyardError('E_CONFLICT', `no free host port left in ${from}-${to} (services.${service}.hostPorts)`);
    }
    const hostPort = ports[i];
    const started = await launchInstance(deps, service, svc, { instance, restarts: 0, actor: opts.actor, ...(hostPort !== undefined ? { hostPort } : {}) });
    opts.progress(`${instance} running at ${started.address}, registered (${++done}/${count})`);
    return started;
  });
  const outcome: LaunchOutcome = { started: [], failed: [] };
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') outcome.started.push(r.value);
    else {
      const error = asSwitchyardError(r.reason);
      outcome.failed.push({ instance: names[i]!, error });
      opts.progress(`${names[i]!} failed: ${error.message}`);
    }
  });
  return outcome;
}
