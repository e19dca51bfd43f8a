import type { OrchestratorDeps } from './deps.js';

const POLL_MS = 200;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface DrainWait {
  /** Sessions left when we stopped waiting (0: drained); undefined when nobody could count them. */
  sessions: number | undefined;
  waitedMs: number;
  timedOut: boolean;
}

/**
 * After `drain` is written, wait until the load balancer reports no sessions left on the
 * instance, at most drainTimeout. Without a SessionCounter, or while it cannot tell, wait
 * the short drain grace: long enough for the agent to apply the drain and for requests
 * already in flight to finish.
 */
export async function waitDrained(deps: OrchestratorDeps, service: string, instance: string): Promise<DrainWait> {
  const { sessions } = deps;
  const { drainTimeoutMs, drainGraceMs } = deps.settings;
  const started = Date.now();
  const elapsed = () => Date.now() - started;
  let last: number | undefined;
  if (sessions) {
    while (elapsed() < drainTimeoutMs) {
      try {
        last = await sessions.currentSessions(service, instance);
      } catch (err) {
        deps.log.debug({ err, service, instance }, 'could not read sessions; waiting the grace instead');
        last = undefined;
      }
      if (last === 0) return { sessions: 0, waitedMs: elapsed(), timedOut: false };
      if (last === undefined && elapsed() >= drainGraceMs) return { sessions: undefined, waitedMs: elapsed(), timedOut: false };
      await sleep(Math.min(POLL_MS, Math.max(0, drainTimeoutMs - elapsed())));
    }
    return { sessions: last, waitedMs: elapsed(), timedOut: last !== undefined };
  }
  await sleep(drainGraceMs);
  return { sessions: undefined, waitedMs: elapsed(), timedOut: false };
}
