import { isSwitchyardError } from '../core/errors.js';
import type { OrchestratorDeps, Progress } from './deps.js';
import { watchDrain } from './rotation.js';
import { asSwitchyardError, type InstanceFailure } from './failure.js';
import { settleAll } from './limit.js';
import { ownedBy } from './ownership.js';
import type { InstanceView } from './view.js';

export interface RetireOutcome {
  retired: string[];
  failed: InstanceFailure[];
}

const PARALLEL = 16;

/**
 * Take instances out without cutting live sessions: drain (the agent applies it to
 * HAProxy), wait for sessions to end, deregister, then stop with a grace period and
 * remove. The order matters: once deregistered, the container's death is not news, and
 * a failure before that leaves the container running and registered rather than orphaned.
 */
export async function retireInstances(
  deps: OrchestratorDeps,
  service: string,
  victims: readonly InstanceView[],
  opts: { actor: string; progress: Progress },
): Promise<RetireOutcome> {
  const { registry, engine, settings } = deps;
  const by = ownedBy(opts.actor, settings.owner);
  let done = 0;
  const results = await settleAll(victims, PARALLEL, async (iv) => {
    // The view may be a moment old: the registry decides whether there is anything to drain.
    let registered = true;
    try {
      await registry.setState(service, iv.instance, 'drain', by);
    } catch (err) {
      if (!isSwitchyardError(err, 'E_NOT_FOUND')) throw err;
      registered = false;
    }
    if (registered) {
      opts.progress(`draining ${iv.instance}`);
      const stillOpen = await waitDrained(deps, service, iv.instance);
      if (stillOpen)
        opts.progress(`${iv.instance}: still ${stillOpen.sessions} session(s) after ${Math.round(stillOpen.waitedMs / 1000)}s of draining; stopping anyway`);
      await registry.deregister(service, iv.instance);
    }
    for (const c of iv.containers) {
      if (c.status === 'running') await engine.stop(c.id, settings.stopGraceMs);
      try {
        await engine.remove(c.id, { force: true });
      } catch (err) {
        if (!isSwitchyardError(err, 'E_NOT_FOUND')) throw err;
      }
    }
    opts.progress(`${iv.instance} drained, deregistered, stopped and removed (${++done}/${victims.length})`);
    return iv.instance;
  });
  const outcome: RetireOutcome = { retired: [], failed: [] };
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') outcome.retired.push(r.value);
    else outcome.failed.push({ instance: victims[i]!.instance, error: asSwitchyardError(r.reason) });
  });
  return outcome;
}

/**
 * After `drain` is written, wait (at most drainTimeout) until HAProxy has it out of rotation
 * with no session left. Without a local HAProxy, wait the short drain grace: long enough for
 * the agents to apply it and for requests in flight to finish. Returns what was still open
 * when we stopped waiting, if anything.
 */
export async function waitDrained(deps: OrchestratorDeps, service: string, instance: string): Promise<{ sessions: number; waitedMs: number } | undefined> {
  const { drainTimeoutMs, drainGraceMs } = deps.settings;
  if (!deps.haproxy) {
    await new Promise((r) => setTimeout(r, drainGraceMs));
    return undefined;
  }
  const outcome = await watchDrain(deps.haproxy.lookup, service, instance, {
    timeoutMs: drainTimeoutMs,
    applyGraceMs: drainGraceMs,
    agentId: deps.haproxy.agentId,
  });
  if (outcome.kind === 'unreadable') deps.log.debug({ service, instance, error: outcome.error }, 'could not read sessions while draining');
  return (outcome.kind === 'open' || outcome.kind === 'not-applied') && outcome.sessions > 0 ? outcome : undefined;
}

/**
 * Which instances go first on scale-down: those not taking traffic (unregistered, drained,
 * in maintenance), then the newest — the oldest have proven themselves.
 */
export function pickVictims(live: readonly InstanceView[], count: number): InstanceView[] {
  const rank = (iv: InstanceView) => (!iv.registration ? 0 : (iv.registration.state?.state ?? 'ready') !== 'ready' ? 1 : 2);
  const created = (iv: InstanceView) => iv.running?.created.getTime() ?? 0;
  return [...live].sort((a, b) => rank(a) - rank(b) || created(b) - created(a)).slice(0, Math.max(0, count));
}
