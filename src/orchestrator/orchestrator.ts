import type { OrchestratorDeps } from './deps.js';
import { DeathWatcher } from './death-watcher.js';
import { Reconciler, type ReconcileReport } from './reconciler.js';
import { swarmBackendOf } from './swarm/backend.js';
import { SwarmWatcher } from './swarm/watcher.js';

export interface RunningOrchestrator {
  readonly reconciler: Reconciler;
  /** Settles after the first reconcile (which waits for the events stream, so nothing dies unseen in between). */
  readonly started: Promise<ReconcileReport>;
  close(): Promise<void>;
}

/**
 * The background half of Docker orchestration, run by `serve`: death detection from the
 * events stream, and reconcile at start, after the stream reconnects, and periodically.
 * Returns at once; a Docker engine that is down at start is reconciled when it comes back.
 */
export function startOrchestrator(deps: OrchestratorDeps): RunningOrchestrator {
  const log = deps.log.child({ component: 'orchestrator' });
  const reconciler = new Reconciler(deps);
  const kick = (reason: 'reconnect' | 'interval') =>
    reconciler.trigger(reason).catch((err: unknown) => log.error({ err, reason }, 'reconcile failed; retried at the next interval'));
  const watcher = new DeathWatcher(deps, { onReconnect: () => void kick('reconnect') });
  const { ready } = watcher.start();
  // Subscribed first, then reconciled: a death after the snapshot is seen by the watcher.
  const started = ready.then(() => reconciler.trigger('start'));
  started.catch((err: unknown) => log.error({ err }, 'reconcile at start failed; retried at the next interval'));
  const backend = swarmBackendOf(deps);
  const swarm = backend && new SwarmWatcher(backend);
  swarm?.start();
  const timer = setInterval(() => void kick('interval'), deps.settings.reconcileIntervalMs);
  timer.unref();
  log.info({ owner: deps.settings.owner, reconcileIntervalMs: deps.settings.reconcileIntervalMs }, 'docker orchestration started');
  return {
    reconciler,
    started,
    async close() {
      clearInterval(timer);
      await Promise.all([watcher.close(), swarm?.close()]);
    },
  };
}
