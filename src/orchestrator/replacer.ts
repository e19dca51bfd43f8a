import { withCause } from '../core/feed.js';
import type { Logger } from '../core/log.js';
import { restartDelayMs } from './death-report.js';
import type { OrchestratorDeps } from './deps.js';
import { asSwitchyardError } from './failure.js';
import { launchInstance } from './launch.js';
import { containerName, restartsOf } from './naming.js';
import type { HeldLock } from './ports.js';
import { serviceView } from './view.js';

export interface Replacement {
  service: string;
  instance: string;
  /** The dead container's name: its `.rN` suffix counts the restarts so far. */
  containerName: string;
  /** How long the dead run lived, when known: quick deaths back off. */
  livedMs: number | undefined;
  /** Restarts in a row whose new container never got going (died at start, never ready). */
  failedStarts?: number;
}

/**
 * `restart: always`: a dead instance comes back under the same instance name (like a
 * Docker restart keeps the container), as a fresh container with its restart count one
 * higher. It takes the service's lock, so it never races a scale, and it only starts
 * something while the service is below its desired replicas.
 */
export class Replacer {
  private closed = false;
  /** Pending back-off sleeps: close() ends them, so nothing waits on a closed replacer. */
  private readonly sleepers = new Map<NodeJS.Timeout, (awake: boolean) => void>();
  private readonly log: Logger;

  constructor(private readonly deps: OrchestratorDeps) {
    this.log = deps.log.child({ component: 'replacer' });
  }

  close(): void {
    this.closed = true;
    for (const [t, wake] of this.sleepers) {
      clearTimeout(t);
      wake(false);
    }
    this.sleepers.clear();
  }

  /**
   * A restart whose own container dies at start (or never gets ready) leaves no container
   * behind to die again, so the loop continues here, backing off as Docker's restart policy
   * does, instead of stopping until the next reconcile.
   */
  async replace(r: Replacement): Promise<void> {
    let next: Replacement | undefined = r;
    while (next && !this.closed) next = await this.attempt(next);
  }

  /** One restart; returns the next attempt when the new container itself failed to start. */
  private async attempt(r: Replacement): Promise<Replacement | undefined> {
    const { deps } = this;
    const svc = deps.config.services[r.service];
    if (!svc) return undefined;
    const restarts = restartsOf(r.containerName, r.instance) + 1;
    const delay = restartDelayMs(restarts, r.livedMs);
    if (delay > 0) {
      this.log.info({ instance: r.instance, restarts, delay }, 'instance keeps dying: backing off before the next restart');
      if (!(await this.sleep(delay))) return undefined;
    }
    if (this.closed) return undefined;
    let lock: HeldLock | undefined;
    let launching = false;
    try {
      lock = await deps.locks.acquire(r.service, { by: 'restart', what: `restart ${r.service}/${r.instance}` }, { waitMs: deps.settings.lockWaitMs });
      const [desired, view] = await Promise.all([deps.registry.getDesired(r.service), serviceView(deps, r.service)]);
      const running = view.managed.filter((iv) => iv.running);
      if (running.some((iv) => iv.instance === r.instance)) return undefined;
      if (desired !== undefined && running.length >= desired.replicas) {
        this.log.info({ instance: r.instance, running: running.length, desired: desired.replicas }, 'not restarting: the service is at its desired replicas');
        return undefined;
      }
      launching = true;
      const started = await withCause({ by: 'restart', reason: `restart: always (restart ${restarts})` }, () =>
        launchInstance(deps, r.service, svc, { instance: r.instance, restarts, actor: 'restart' }),
      );
      deps.notices.publish({
        kind: 'container.restarted',
        text: `${r.service}/${r.instance} restarted (restart ${restarts}): running at ${started.address}`,
        at: new Date().toISOString(),
      });
      return undefined;
    } catch (err) {
      const e = asSwitchyardError(err);
      const failedStarts = (r.failedStarts ?? 0) + 1;
      // Only the container's own failure keeps the loop going; a lock or etcd failure is left to reconcile.
      const again = launching && !this.closed;
      this.log.error({ err, instance: r.instance, failedStarts, again }, 'restart failed');
      // #ops hears of the first failure of a loop, not of every retry of it.
      if (failedStarts === 1) {
        deps.feed.publish({
          kind: 'container.restart-failed',
          text:
            `${r.service}/${r.instance} could not be restarted: ${e.message}${e.details.length ? ` (${e.details.slice(0, 3).join('; ')})` : ''}` +
            `${again ? '; retrying with back-off' : ''}`,
          at: new Date().toISOString(),
        });
      }
      return again ? { service: r.service, instance: r.instance, containerName: containerName(r.instance, restarts), livedMs: 0, failedStarts } : undefined;
    } finally {
      await lock?.release();
    }
  }

  /** Resolves false when closed meanwhile. */
  private sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.sleepers.delete(t);
        resolve(!this.closed);
      }, ms);
      this.sleepers.set(t, resolve);
    });
  }
}
