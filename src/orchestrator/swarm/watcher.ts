/**
 * Death handling and reconcile for `backend: swarm` services. Swarm emits no task events:
 * the engine's service and container events are a hint to look at once, and the tasks are
 * polled as the backstop, so a stopped, failed or rescheduled task is deregistered (and its
 * replacement registered) within a poll plus a sync.
 */
import { withCause } from '../../core/feed.js';
import type { Logger } from '../../core/log.js';
import type { SwarmBackend } from './backend.js';

export interface SwarmWatcherOptions {
  /** Backstop poll of the tasks; at most 1 s so a death is handled within 2 s. */
  pollMs?: number;
  /** How often drift (desired vs running, registrations put right) is reported to #ops. */
  reconcileIntervalMs?: number;
}

export interface SwarmReconcileLine {
  service: string;
  changes: string[];
  problems: string[];
  desired: number | undefined;
  running: number;
}

export class SwarmWatcher {
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private events: { close(): void } | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;
  /** Last drift reported per service: #ops hears of a change, not every round. */
  private readonly reported = new Map<string, string>();

  constructor(
    private readonly backend: SwarmBackend,
    private readonly opts: SwarmWatcherOptions = {},
  ) {
    this.log = backend.deps.log.child({ component: 'swarm-watcher' });
  }

  start(): void {
    const pollMs = Math.min(1000, this.opts.pollMs ?? 500);
    this.events = this.backend.deps.swarm.watch(() => this.kick());
    this.timer = setInterval(() => this.kick(), pollMs);
    this.timer.unref();
    const every = this.opts.reconcileIntervalMs ?? this.backend.deps.settings.reconcileIntervalMs;
    this.reconcileTimer = setInterval(() => void this.reconcile('interval').catch((err: unknown) => this.log.error({ err }, 'swarm reconcile failed')), every);
    this.reconcileTimer.unref();
    void this.reconcile('start').catch((err: unknown) => this.log.error({ err }, 'swarm reconcile at start failed; retried at the next interval'));
  }

  /** Look at every swarm service now, or right after the look under way. */
  private kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.tick()
      .catch((err: unknown) => this.log.warn({ err }, 'swarm task poll failed; retried at the next poll'))
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.closed) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async tick(): Promise<void> {
    for (const service of this.backend.services()) {
      const out = await withCause({ by: 'swarm', reason: 'task watch' }, () => this.backend.sync(service, 'swarm'));
      // The registry feed tells #ops of each (de)registration already; these go to the logs.
      for (const c of out.changes) this.backend.deps.notices.publish({ kind: 'death', text: c, at: new Date().toISOString() });
    }
  }

  /** Sync every swarm service and report what was put right and any desired ≠ running to #ops. */
  async reconcile(reason: 'start' | 'interval' | 'manual'): Promise<SwarmReconcileLine[]> {
    const { deps } = this.backend;
    const lines: SwarmReconcileLine[] = [];
    const text: string[] = [];
    for (const service of this.backend.services()) {
      const out = await withCause({ by: 'reconcile', reason: `reconcile (${reason})` }, () => this.backend.sync(service, 'reconcile'));
      const desired = (await deps.registry.getDesired(service))?.replicas;
      const line = { service, changes: out.changes, problems: out.problems, desired, running: out.view.running.length };
      lines.push(line);
      text.push(...out.changes);
      const drift = [
        desired !== undefined && desired !== line.running ? `${service} (swarm): desired ${desired}, running ${line.running}` : '',
        ...out.problems,
      ]
        .filter(Boolean)
        .join('\n');
      if (drift !== (this.reported.get(service) ?? '')) {
        if (drift) text.push(drift);
        else text.push(`${service} (swarm): back in line (desired ${desired ?? '-'}, running ${line.running})`);
        this.reported.set(service, drift);
      }
    }
    if (text.length) deps.feed.publish({ kind: 'reconcile', text: `reconcile (${reason}):\n${text.join('\n')}`, at: new Date().toISOString() });
    return lines;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    this.events?.close();
    await this.running;
  }
}
