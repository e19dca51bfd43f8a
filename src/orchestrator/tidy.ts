import { isSwitchyardError } from '../core/errors.js';
import type { OrchestratorDeps } from './deps.js';
import { asSwitchyardError } from './failure.js';
import { ownedBy } from './ownership.js';
import { serviceView, type InstanceView, type ServiceView } from './view.js';

export interface TidyOutcome {
  /** What was changed, one line each (for the feed and the reply). */
  changes: string[];
  /** What needs a person (or the next round): unhealthy, paused, no published port, a failed step. */
  problems: string[];
  /** Instances whose container runs and which are registered once this is done. */
  live: InstanceView[];
  view: ServiceView;
}

/**
 * Make the registry and the engine agree for one service, touching only what is ours: a
 * running container gets its registration (only once healthy, with a HEALTHCHECK), a
 * registration whose container is gone or stopped is removed, and stopped containers are
 * removed. Run under the service's lock: a container a scale has just created is not yet
 * running and would otherwise look like a leftover.
 */
export async function tidyService(deps: OrchestratorDeps, service: string, opts: { actor: string; waitForStarting?: boolean }): Promise<TidyOutcome> {
  const { engine, registry, settings } = deps;
  const view = await serviceView(deps, service);
  const out: TidyOutcome = { changes: [], problems: [], live: [], view };
  const by = ownedBy(opts.actor, settings.owner);

  const step = async (what: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      out.problems.push(`${what}: ${asSwitchyardError(err).message}`);
    }
  };

  for (const iv of view.managed) {
    const { running, registration } = iv;
    if (running) {
      if (!iv.address) {
        out.problems.push(`${service}/${iv.instance}: container ${running.name} runs but publishes no port for the service`);
        continue;
      }
      if (!registration || registration.address !== iv.address) {
        await step(`registering ${service}/${iv.instance}`, async () => {
          if (!(await readyToServe(deps, running.id, opts.waitForStarting ?? false))) {
            out.problems.push(`${service}/${iv.instance}: container ${running.name} is not healthy yet; not registered`);
            return;
          }
          await registry.register(service, iv.instance, iv.address!, { by });
          out.changes.push(
            registration
              ? `${service}/${iv.instance} re-registered at ${iv.address} (was ${registration.address})`
              : `${service}/${iv.instance} registered at ${iv.address}: its container was running unregistered`,
          );
          out.live.push(iv);
        });
      } else {
        out.live.push(iv);
      }
    } else if (registration) {
      const states = [...new Set(iv.containers.map((c) => c.statusText || c.status))].join(', ');
      await step(`deregistering ${service}/${iv.instance}`, async () => {
        if (await registry.deregister(service, iv.instance))
          out.changes.push(`${service}/${iv.instance} deregistered: its container is not running (${states})`);
      });
    }
    for (const c of iv.containers) {
      if (c === running || !['exited', 'dead', 'created'].includes(c.status)) {
        if (c !== running) out.problems.push(`${service}/${iv.instance}: container ${c.name} is ${c.status}; left alone`);
        continue;
      }
      await step(`removing container ${c.name}`, async () => {
        try {
          await engine.remove(c.id, { force: true });
        } catch (err) {
          if (!isSwitchyardError(err, 'E_NOT_FOUND')) throw err;
        }
        out.changes.push(`${service}/${iv.instance}: removed ${c.status} container ${c.name}`);
      });
    }
  }

  for (const r of view.orphaned) {
    await step(`deregistering ${service}/${r.instance}`, async () => {
      if (await registry.deregister(service, r.instance)) out.changes.push(`${service}/${r.instance} deregistered: its container no longer exists`);
    });
  }
  return out;
}

/** Running is enough without a HEALTHCHECK; with one, only healthy is. */
async function readyToServe(deps: OrchestratorDeps, id: string, waitForStarting: boolean): Promise<boolean> {
  const info = await deps.engine.inspect(id);
  if (!info.running) return false;
  if (!info.hasHealthcheck || info.health === 'healthy') return true;
  if (!waitForStarting || info.health !== 'starting') return false;
  try {
    await deps.engine.waitRunning(id, { timeoutMs: deps.settings.startTimeoutMs });
    return true;
  } catch (err) {
    deps.log.warn({ err, id }, 'container did not become healthy');
    return false;
  }
}
