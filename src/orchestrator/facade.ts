/**
 * The Orchestration facade over Docker: scale and the container columns of `status`, per
 * service on plain containers or (`backend: swarm`) as a Swarm service on the same engine.
 * Backend-neutral from above: a plugin sees services and instances, never containers'
 * engine. Present without `docker:` too, so `scale` refuses with the service's own
 * configuration first (a routed-only service), and only then for the missing engine.
 */
import { scalableService, type Config } from '../config/schema.js';
import { fail } from '../core/errors.js';
import type { Orchestration, ScaleOutcome, StatusColumns } from '../core/facades.js';
import { currentActor, currentCause } from '../core/feed.js';
import type { Logger } from '../core/log.js';
import type { OrchestratorDeps } from './deps.js';
import { scaleService, type ScaleResult } from './scaler.js';
import { containerColumns } from './status-columns.js';
import { swarmBackendOf } from './swarm/backend.js';
import { joinColumns, swarmColumns } from './swarm/columns.js';
import { scaleSwarmService } from './swarm/scale.js';

export class DockerOrchestration implements Orchestration {
  constructor(
    private readonly config: Pick<Config, 'services'>,
    /** Undefined without `docker:`. */
    private readonly deps: OrchestratorDeps | undefined,
    private readonly log: Logger,
  ) {}

  checkScale(service: string, replicas: number): void {
    const svc = this.config.services[service];
    if (!svc) {
      const known = Object.keys(this.config.services);
      fail('E_NOT_FOUND', `${service} is not a configured service: only services under services: in switchyard.yaml can be scaled`, {
        details: [known.length ? `configured: ${known.sort().join(', ')}` : 'no service is configured'],
      });
    }
    scalableService(service, svc);
    if (replicas > svc.maxReplicas)
      fail('E_BAD_ARGS', `${service} allows at most ${svc.maxReplicas} replicas (services.${service}.maxReplicas); asked for ${replicas}`);
  }

  async scale(service: string, replicas: number, opts: { progress?: (text: string) => void } = {}): Promise<ScaleOutcome> {
    this.checkScale(service, replicas);
    if (this.config.services[service]?.backend === 'swarm') return this.scaleOnSwarm(service, replicas, opts.progress ?? (() => {}));
    if (!this.deps) fail('E_UNAVAILABLE', 'no Docker engine is configured: add a docker: section to switchyard.yaml (or set DOCKER_HOST)');
    const requestId = currentCause()?.requestId;
    const result = await scaleService(this.deps, {
      service,
      replicas,
      actor: currentActor(),
      ...(requestId ? { requestId } : {}),
      progress: opts.progress ?? (() => {}),
    });
    return outcomeOf(result);
  }

  private async scaleOnSwarm(service: string, replicas: number, progress: (text: string) => void): Promise<ScaleOutcome> {
    const backend = this.deps && swarmBackendOf(this.deps);
    if (!backend)
      fail(
        'E_UNAVAILABLE',
        `${service} runs on Swarm (services.${service}.backend: swarm) but no Docker engine is configured: add a docker: section whose host is a Swarm manager`,
      );
    const requestId = currentCause()?.requestId;
    return scaleSwarmService(backend, { service, replicas, actor: currentActor(), ...(requestId ? { requestId } : {}), progress });
  }

  async statusColumns(service?: string): Promise<StatusColumns | undefined> {
    if (!this.deps) return undefined;
    const isSwarm = (s: string) => this.config.services[s]?.backend === 'swarm';
    const backend = swarmBackendOf(this.deps);
    const anySwarm = service === undefined ? Object.keys(this.config.services).some(isSwarm) : isSwarm(service);
    if (!backend || !anySwarm) return containerColumns(this.deps.engine, this.deps.settings.owner, service, this.log);
    const swarm = await swarmColumns(backend, service);
    if (service !== undefined) return swarm;
    return joinColumns(await containerColumns(this.deps.engine, this.deps.settings.owner, service, this.log), swarm, isSwarm);
  }
}

function outcomeOf(r: ScaleResult): ScaleOutcome {
  return {
    service: r.service,
    replicas: r.replicas,
    before: r.before,
    running: r.after.managed
      .filter((iv) => iv.running)
      .map((iv) => ({
        instance: iv.instance,
        address: iv.registration?.address ?? '-',
        state: iv.registration ? (iv.registration.state?.state ?? 'ready') : 'unregistered',
        container: iv.running!.name,
        status: iv.running!.statusText,
      })),
    started: r.started.map((s) => s.instance),
    retired: r.retired,
    failed: r.failed.map((f) => ({ instance: f.instance, code: f.error.code, message: f.error.message, details: [...f.error.details] })),
    tidied: r.tidied,
    problems: r.problems,
  };
}
