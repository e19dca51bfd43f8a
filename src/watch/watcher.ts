/**
 * `switchyard watch`: one per Docker host. Containers labelled switchyard.register are kept
 * registered while they run, on this watcher's own kept-alive lease, so nothing it
 * registered can outlive it: a crash, a dead host or a cut network lets the lease expire and
 * etcd removes the keys itself. Every change goes through one queue, one at a time: a
 * reconcile and an event for the same container never race.
 */
import type Dockerode from 'dockerode';
import type { EtcdRegistry } from '../adapters/etcd/registry.js';
import type { Logger } from '../core/log.js';
import { settledWithin } from '../core/shutdown.js';
import { desiredFor, inspectSchema, LABEL_REGISTER, type Desired } from './container.js';
import { LabelledEvents, type ContainerEvent } from './docker-events.js';
import { WatcherKeys } from './keys.js';

export interface WatcherOptions {
  registry: EtcdRegistry;
  docker: Dockerode;
  /** Host ID: the watcher record's name and the `watch@<host>` of its changes. */
  host: string;
  /** Address registered for published ports (watch.advertise). */
  advertise: string;
  ttlMs: number;
  log: Logger;
  /** A full reconcile this often besides the ones on start and reconnect; default 30 s. */
  reconcileEveryMs?: number;
  /** First retry after a failed etcd or Docker call; default 500 ms. */
  retryMs?: number;
  /** Told after each Docker event has been applied (tests and the bench wait on it). */
  onApplied?: (e: ContainerEvent) => void;
}

/** Part of the 5 s SIGTERM budget for the change in hand; the revoke needs the rest. */
const STOP_WAIT_MS = 1500;

type Registered = { service: string; instance: string };
const keyOf = (r: Registered) => `${r.service}/${r.instance}`;

const REASONS: Record<string, string> = {
  start: 'container started',
  kill: 'container killed',
  die: 'container died',
  stop: 'container stopped',
  destroy: 'container removed',
  pause: 'container paused',
  unpause: 'container unpaused',
};

export const isSigkill = (signal: string | undefined): boolean => signal === '9' || signal === 'SIGKILL' || signal === 'KILL';

export function eventReason(action: string): string {
  if (action.startsWith('health_status')) return `container ${action.split(':')[1]?.trim() || 'health changed'}`;
  return REASONS[action] ?? `container ${action}`;
}

export class Watcher {
  private readonly keys: WatcherKeys;
  private queue: Promise<void> = Promise.resolve();
  /** Container ID → the instance it is registered as. */
  private readonly byContainer = new Map<string, Registered>();
  private events: LabelledEvents | undefined;
  private timer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly startedAt = new Date().toISOString();
  private lastReconcile: string | undefined;
  /** How many reconciles finished; tests and the bench wait on it. */
  reconciles = 0;
  /** How many container events were handled. */
  handled = 0;

  constructor(private readonly opts: WatcherOptions) {
    this.keys = new WatcherKeys(opts.registry, opts.host, opts.log);
  }

  get lease(): string | undefined {
    return this.keys.currentLease;
  }

  /** Lease, then a reconcile from the engine's current state, then events (none missed in between). */
  async start(): Promise<void> {
    await this.openLease();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    this.queue = gate;
    this.events = new LabelledEvents(
      this.opts.docker,
      {
        onEvent: (e) => this.enqueue(() => this.onEvent(e)),
        onReconnect: () => this.enqueue(() => this.reconcile('docker events reconnected')),
      },
      this.opts.log,
    );
    try {
      await this.events.ready;
      // Events from now on wait behind the gate; the reconcile sees everything before them.
      await this.reconcile('watcher started');
    } finally {
      release();
    }
    this.timer = setInterval(() => this.enqueue(() => this.reconcile('periodic')), this.opts.reconcileEveryMs ?? 30_000);
    this.timer.unref();
  }

  /** Stop taking events, finish the change in hand, then revoke the lease: every key goes at once. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.retryTimer);
    this.events?.close();
    // A Docker call that hangs must not keep the lease from being revoked.
    await settledWithin(this.queue, STOP_WAIT_MS);
    const lease = this.keys.currentLease;
    if (lease !== undefined) {
      await this.keys
        .writeRecord(this.record(lease, true))
        .catch((err: unknown) => this.opts.log.warn({ err }, 'watch: could not mark the record as stopping'));
    }
    await this.keys.revoke();
  }

  /** Resolves once every change queued so far is done. */
  idle(): Promise<void> {
    return this.queue;
  }

  private enqueue(task: () => Promise<void>): void {
    if (this.stopped) return;
    this.queue = this.queue.then(task).catch((err: unknown) => {
      this.opts.log.error({ err }, 'watch: a change failed; reconciling again shortly');
      this.scheduleRetry();
    });
  }

  private scheduleRetry(): void {
    if (this.stopped || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.enqueue(async () => {
        if (this.keys.currentLease === undefined) await this.openLease();
        await this.reconcile('retry after a failure');
      });
    }, this.opts.retryMs ?? 500);
  }

  private async openLease(): Promise<void> {
    const lease = await this.keys.open(Math.max(1, Math.ceil(this.opts.ttlMs / 1000)), (why) => {
      this.opts.log.error({ why }, 'watch: lease lost (etcd unreachable past the TTL); its registrations expired — registering again');
      this.scheduleRetry();
    });
    // The record goes on the lease before any registration does: whenever the lease ends,
    // the feed can tell whose registrations went with it.
    await this.keys.writeRecord(this.record(lease));
  }

  private async inspect(id: string): Promise<Desired & { name?: string }> {
    try {
      const body = inspectSchema.parse(await this.opts.docker.getContainer(id).inspect());
      return desiredFor(body);
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return { kind: 'absent', why: 'container removed' };
      throw err;
    }
  }

  private async onEvent(e: ContainerEvent): Promise<void> {
    this.handled++;
    if (e.action === 'kill' && !isSigkill(e.signal)) return;
    // SIGKILL cannot be caught: the container is as good as dead, and Docker's `die` comes
    // only after its teardown (up to a second later). Other signals may be handled.
    const desired: Desired = e.action === 'kill' ? { kind: 'absent', why: 'container killed' } : await this.inspect(e.id);
    await this.apply(e.id, desired, eventReason(e.action));
    this.opts.onApplied?.(e);
  }

  private async apply(id: string, desired: Desired, reason: string): Promise<void> {
    const before = this.byContainer.get(id);
    if (desired.kind === 'register') {
      const target = { service: desired.service, instance: desired.instance };
      const holder = [...this.byContainer].find(([cid, r]) => cid !== id && keyOf(r) === keyOf(target));
      if (holder) {
        this.opts.log.warn(
          { container: id, other: holder[0], instance: keyOf(target) },
          'watch: another container already registers this instance; set switchyard.instance',
        );
        return;
      }
      if (before && keyOf(before) !== keyOf(target)) await this.keys.remove(before.service, before.instance, reason);
      const outcome = await this.keys.put({
        ...target,
        address: this.address(desired.port),
        state: desired.state,
        ...(desired.weight !== undefined ? { weight: desired.weight } : {}),
        reason,
      });
      if (outcome === 'foreign') {
        this.opts.log.warn({ instance: keyOf(target) }, 'watch: the key is registered by someone else (register, scale or another watcher); left alone');
        this.byContainer.delete(id);
        return;
      }
      this.byContainer.set(id, target);
      return;
    }
    if (before) {
      await this.keys.remove(before.service, before.instance, reason);
      this.byContainer.delete(id);
    }
  }

  private address(port: number): string {
    const a = this.opts.advertise;
    return a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`;
  }

  /** Make etcd match the engine: register what runs, remove what this watcher owns and no longer runs. */
  private async reconcile(why: string): Promise<void> {
    const listed = await this.opts.docker.listContainers({ all: true, filters: { label: [LABEL_REGISTER] } });
    const wanted = new Map<string, { id: string; desired: Desired & { kind: 'register' } }>();
    const inspected = await Promise.all(listed.map(async (c) => [c.Id, await this.inspect(c.Id)] as const));
    /** Why a stopped container's instance goes (exited, dead); unlisted ones are simply gone. */
    const gone = new Map<string, string>();
    for (const [id, desired] of inspected) {
      if (desired.kind === 'absent' && desired.service && desired.instance)
        gone.set(keyOf({ service: desired.service, instance: desired.instance }), desired.why);
      if (desired.kind !== 'register') continue;
      const k = keyOf(desired);
      if (wanted.has(k)) {
        this.opts.log.warn({ container: id, instance: k }, 'watch: two containers for one instance; the first is registered (set switchyard.instance)');
        continue;
      }
      wanted.set(k, { id, desired });
    }
    for (const owned of await this.keys.owned()) {
      if (!wanted.has(keyOf(owned))) await this.keys.remove(owned.service, owned.instance, gone.get(keyOf(owned)) ?? 'container gone');
    }
    this.byContainer.clear();
    for (const { id, desired } of wanted.values()) await this.apply(id, desired, `${desired.why}`);
    await this.keys.forgetPredecessors();
    this.lastReconcile = new Date().toISOString();
    this.reconciles++;
    const lease = this.keys.currentLease;
    if (lease !== undefined) await this.keys.writeRecord(this.record(lease));
    this.opts.log.info({ why, registered: this.byContainer.size }, 'watch: reconciled');
  }

  private record(lease: string, stopping = false) {
    return {
      host: this.opts.host,
      advertise: this.opts.advertise,
      lease,
      pid: process.pid,
      startedAt: this.startedAt,
      ...(this.lastReconcile ? { lastReconcile: this.lastReconcile } : {}),
      registered: this.byContainer.size,
      ...(stopping ? { stopping: true } : {}),
    };
  }
}
