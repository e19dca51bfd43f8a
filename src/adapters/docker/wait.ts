import { SwitchyardError } from '../../core/errors.js';
import type { ContainerInfo, WaitOptions } from './types.js';

export interface WaitDeps {
  inspect(id: string): Promise<ContainerInfo>;
  /** Last lines the container printed; best effort (may resolve to []). */
  tailLogs(id: string): Promise<string[]>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A container that dies a few milliseconds after start is the common face of a bad cmd or
 * env; without a short settle window it would be reported as running and registered. A
 * HEALTHCHECK already proves stability, so healthy containers skip it.
 */
export const DEFAULT_SETTLE_MS = 250;

export async function waitUntilRunning(id: string, deps: WaitDeps, opts: WaitOptions & { settleMs?: number } = {}): Promise<ContainerInfo> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const pollMs = opts.pollMs ?? 50;
  const settleMs = opts.settleMs ?? DEFAULT_SETTLE_MS;
  const deadline = Date.now() + timeoutMs;
  let runningSince: { at: number; startedAt: number | undefined } | undefined;
  for (;;) {
    const info = await deps.inspect(id);
    const short = `${info.name || id.slice(0, 12)}`;

    if (info.status === 'exited' || info.status === 'dead' || (info.status === 'created' && info.error !== '')) {
      const logs = await deps.tailLogs(id);
      const why = info.oomKilled ? ' (killed: out of memory)' : '';
      const started = info.startedAt !== undefined;
      throw new SwitchyardError(
        'E_BAD_ARGS',
        started
          ? `container ${short} exited with code ${info.exitCode}${why} right after start`
          : `container ${short} could not start: ${info.error || `exit code ${info.exitCode}`}`,
        { details: [...(started && info.error ? [info.error] : []), ...logs.map((l) => `| ${l}`)] },
      );
    }

    if (info.running) {
      if (info.hasHealthcheck) {
        if (info.health === 'healthy') return info;
        if (info.health === 'unhealthy') {
          throw new SwitchyardError('E_UNAVAILABLE', `container ${short} runs but its HEALTHCHECK reports unhealthy`, {
            details: (await deps.tailLogs(id)).map((l) => `| ${l}`),
          });
        }
      } else {
        const startedAt = info.startedAt?.getTime();
        // A restart in between (new StartedAt) resets the settle window.
        if (runningSince === undefined || runningSince.startedAt !== startedAt) {
          const seen = Date.now();
          // The window counts from the engine's own start time when its clock agrees with
          // ours (a start no later than now and no earlier than one window ago): waiting from
          // our first look instead would add the start call's and the inspect's latency to
          // every launch. An engine whose clock disagrees gets the window from our first look.
          const plausible = startedAt !== undefined && startedAt <= seen && startedAt >= seen - settleMs;
          runningSince = { at: plausible ? startedAt : seen, startedAt };
        }
        const left = runningSince.at + settleMs - Date.now();
        if (left <= 0) return info;
        // One look when the window ends, not a poll through it: inspects compete with the
        // starts of the other containers of the same scale in the engine.
        if (Date.now() + left < deadline) {
          await sleep(left);
          continue;
        }
      }
    } else {
      runningSince = undefined;
    }

    if (Date.now() >= deadline) {
      const health = info.hasHealthcheck ? `, health ${info.health}` : '';
      throw new SwitchyardError('E_TIMEOUT', `container ${short} was not ready after ${timeoutMs}ms (state ${info.status}${health})`);
    }
    await sleep(Math.min(pollMs, Math.max(0, deadline - Date.now())));
  }
}
