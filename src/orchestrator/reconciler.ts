import { isSwitchyardError } from '../core/errors.js';
import { withCause } from '../core/feed.js';
import type { Logger } from '../core/log.js';
import type { OrchestratorDeps } from './deps.js';
import { noProgress } from './deps.js';
import { failureLines } from './failure.js';
import { launchInstances } from './launch.js';
import { isOwned } from './ownership.js';
import type { HeldLock } from './ports.js';
import { tidyService } from './tidy.js';

export type ReconcileReason = 'start' | 'reconnect' | 'interval' | 'manual';

export interface ServiceReconcile {
  service: string;
  changes: string[];
  problems: string[];
  /** Running and registered at the end. */
  running: number;
  desired: number | undefined;
  /** Why it was not looked at this round (its lock is held: whoever holds it is converging it). */
  skipped?: string;
}

export interface ReconcileReport {
  reason: ReconcileReason;
  services: ServiceReconcile[];
}

/**
 * After a crash, a lost events stream or anything done behind our back, the registry and the
 * engine are made to agree again: at start, after the events stream reconnects, and every
 * reconcileInterval. Only our own containers and registrations are touched; desired vs
 * actual is reported (and, for `restart: always` services, made up for).
 */
export class Reconciler {
  private current: Promise<ReconcileReport> | undefined;
  private queued: Promise<ReconcileReport> | undefined;
  /** Last drift/problem text reported per service: the feed hears of a change, not every round. */
  private readonly reported = new Map<string, string>();
  private readonly log: Logger;

  constructor(private readonly deps: OrchestratorDeps) {
    this.log = deps.log.child({ component: 'reconciler' });
  }

  /** Run now, or once right after the run in progress (triggers meanwhile share that run). */
  trigger(reason: ReconcileReason): Promise<ReconcileReport> {
    if (!this.current) {
      this.current = this.run(reason).finally(() => (this.current = undefined));
      return this.current;
    }
    this.queued ??= this.current
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        return this.trigger(reason);
      });
    return this.queued;
  }

  private async run(reason: ReconcileReason): Promise<ReconcileReport> {
    const started = Date.now();
    const services = await this.servicesToCheck();
    const report: ReconcileReport = { reason, services: [] };
    // Periodic rounds skip a locked service; after a restart we wait out a crashed holder's lease.
    const waitMs = reason === 'interval' ? 0 : this.deps.settings.lockTtlMs + 2000;
    for (const service of services) report.services.push(await this.reconcileService(service, reason, waitMs));
    this.publish(report);
    this.log.info(
      {
        reason,
        ms: Date.now() - started,
        services: report.services.map((s) => ({ service: s.service, running: s.running, desired: s.desired, changes: s.changes.length, skipped: s.skipped })),
      },
      'reconciled',
    );
    return report;
  }

  /**
   * Configured services, plus any that still have containers or registrations of ours; a
   * `backend: swarm` service's tasks are the Swarm watcher's (here they would look orphaned).
   */
  private async servicesToCheck(): Promise<string[]> {
    const { engine, registry, settings, config } = this.deps;
    const [containers, listing] = await Promise.all([engine.listManaged(settings.owner), registry.list()]);
    return [
      ...new Set([
        ...Object.keys(config.services),
        ...containers.map((c) => c.service),
        ...listing.instances.filter((i) => isOwned(i.state?.by, settings.owner)).map((i) => i.service),
      ]),
    ]
      .filter((s) => config.services[s]?.backend !== 'swarm')
      .sort();
  }

  private async reconcileService(service: string, reason: ReconcileReason, waitMs: number): Promise<ServiceReconcile> {
    const { deps } = this;
    let lock: HeldLock;
    try {
      lock = await deps.locks.acquire(service, { by: 'reconcile', what: `reconcile (${reason})` }, { waitMs });
    } catch (err) {
      if (!isSwitchyardError(err, 'E_CONFLICT')) throw err;
      return { service, changes: [], problems: [], running: 0, desired: undefined, skipped: err.message };
    }
    try {
      return await withCause({ by: 'reconcile', reason: `reconcile (${reason})` }, async () => {
        const tidy = await tidyService(deps, service, { actor: 'reconcile' });
        const desired = (await deps.registry.getDesired(service))?.replicas;
        let running = tidy.live.length;
        const svc = deps.config.services[service];
        if (svc?.restart === 'always' && desired !== undefined && running < desired) {
          const taken = new Set([...tidy.view.registrations.map((r) => r.instance), ...tidy.view.managed.map((iv) => iv.instance)]);
          const usedPorts = new Set(tidy.live.flatMap((iv) => iv.running!.ports.map((p) => p.hostPort)));
          const out = await launchInstances(deps, service, svc, desired - running, { actor: 'reconcile', progress: noProgress, taken, usedPorts });
          running += out.started.length;
          tidy.changes.push(...out.started.map((s) => `${service}/${s.instance} started at ${s.address} (restart: always, below desired)`));
          tidy.problems.push(...failureLines(out.failed));
        }
        return { service, changes: tidy.changes, problems: tidy.problems, running, desired };
      });
    } finally {
      await lock.release();
    }
  }

  private publish(report: ReconcileReport): void {
    const lines: string[] = [];
    for (const s of report.services) {
      lines.push(...s.changes);
      const drift = s.desired !== undefined && s.desired !== s.running ? `${s.service}: desired ${s.desired}, running ${s.running}` : '';
      const state = [drift, ...s.problems].join('\n');
      if (s.skipped === undefined && state !== (this.reported.get(s.service) ?? '')) {
        if (drift) lines.push(drift);
        lines.push(...s.problems.filter((p) => !(this.reported.get(s.service) ?? '').includes(p)));
        if (!state && this.reported.has(s.service)) lines.push(`${s.service}: back in line (desired ${s.desired ?? '-'}, running ${s.running})`);
        if (state) this.reported.set(s.service, state);
        else this.reported.delete(s.service);
      }
    }
    if (lines.length === 0) return;
    this.deps.feed.publish({ kind: 'reconcile', text: `reconcile (${report.reason}):\n${lines.join('\n')}`, at: new Date().toISOString() });
  }
}
