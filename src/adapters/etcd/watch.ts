/**
 * A watch that survives etcd restarts and compaction without losing or repeating events.
 *
 * Why not etcd3's own resume: its Watcher sets the next start revision to the response
 * header's revision + 1 — on 'connected' as well as on 'data'. After a reconnect the
 * created response carries etcd's *current* revision, so if the stream breaks again
 * before the replayed backlog arrives, that backlog is skipped; likewise a catch-up batch
 * whose header is ahead of its last event. And when the start revision was compacted,
 * etcd3 only emits a generic 'error' (the compact_revision is dropped) and forgets the
 * watcher.
 *
 * So each etcd3 Watcher is used for one connection only. We count revisions ourselves
 * from the events delivered; on 'disconnected' the watcher is dropped and, after a
 * backoff, a new one starts at lastSeen + 1. A server-side cancel is checked with a read
 * at lastSeen: "compacted" means deltas can no longer bridge the gap, so the consumer
 * gets a fresh snapshot via onResync(…, 'compacted').
 */
import { GRPCOutOfRangeError, Range, type Etcd3, type IEvent, type IWatchResponse, type Watcher } from 'etcd3';
import { SwitchyardError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { RegistryEvent, WatchHandle, WatchHandlers } from '../../core/registry.js';
import { leaseOf } from './codec.js';
import { describeEtcdError, toRegistryError } from './errors.js';
import { prefixEnd } from './keys.js';

/** The keys one watch covers: one etcd range, narrowed by `accept`. */
export interface WatchScope {
  range: Range;
  accept(key: string): boolean;
  describe: string;
}

/**
 * Directories (each ending in "/") watched through ONE etcd range spanning them all, so
 * that a transaction touching two of them arrives as one batch in revision order; keys
 * in between that belong to none are filtered out here, and so are keys under `except`
 * (subdirectories) unless listed in `alsoKeys`. `alsoKeys` must lie within the range.
 */
export function directoryScope(dirs: string[], opts: { except?: string[]; alsoKeys?: string[]; alsoDirs?: string[] } = {}): WatchScope {
  const except = opts.except ?? [];
  const also = new Set(opts.alsoKeys ?? []);
  const alsoDirs = opts.alsoDirs ?? [];
  const starts = dirs.map((d) => Buffer.from(d)).sort(Buffer.compare);
  const ends = dirs.map(prefixEnd);
  // prefixEnd returns a single 0 byte for "to the end of the keyspace", which sorts first.
  const open = ends.find((e) => e.length === 1 && e[0] === 0);
  const end = open ?? ends.sort(Buffer.compare)[ends.length - 1]!;
  return {
    range: new Range(starts[0]!, end),
    accept: (key) =>
      also.has(key) || alsoDirs.some((d) => key.startsWith(d)) || (dirs.some((d) => key.startsWith(d)) && !except.some((d) => key.startsWith(d))),
    describe: dirs.join(' and '),
  };
}

export interface ResumableWatchOptions {
  client: Etcd3;
  scope: WatchScope;
  handlers: WatchHandlers;
  endpoints: readonly string[];
  log: Logger;
  backoff?: { minMs: number; maxMs: number };
}

export class ResumableWatch implements WatchHandle {
  /** Revision of the newest change (or snapshot) delivered; a new watcher starts after it. */
  private lastSeen = 0n;
  private watcher: Watcher | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private backoffMs: number;
  /** onError was already told about the current disconnection. */
  private inOutage = false;
  private closed = false;

  constructor(private readonly opts: ResumableWatchOptions) {
    this.minBackoffMs = opts.backoff?.minMs ?? 100;
    this.maxBackoffMs = opts.backoff?.maxMs ?? 2000;
    this.backoffMs = this.minBackoffMs;
  }

  /**
   * Without `fromRevision`: read a snapshot, deliver onResync(…, 'initial'), then stream.
   * With it: stream the changes after that revision (it is the last one already seen).
   * Rejects only if the initial snapshot cannot be read; later failures are retried.
   */
  async start(fromRevision?: string): Promise<void> {
    if (fromRevision === undefined) {
      await this.resync('initial');
    } else {
      this.lastSeen = BigInt(fromRevision);
      this.attach();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    const w = this.watcher;
    this.watcher = undefined;
    if (!w) return;
    // cancel() waits for etcd to confirm; with etcd gone that can take until the next
    // reconnect attempt, so stop waiting after a second (the watcher is already inert).
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 1000);
    });
    try {
      await Promise.race([w.cancel(), gaveUp]);
    } catch (err) {
      this.opts.log.debug({ err }, 'etcd watch cancel failed');
    } finally {
      clearTimeout(timer);
    }
  }

  private async resync(reason: 'initial' | 'compacted'): Promise<void> {
    const { client, scope, handlers, endpoints } = this.opts;
    let res;
    try {
      res = await client.getAll().inRange(scope.range).exec();
    } catch (err) {
      throw toRegistryError(err, endpoints, `reading ${scope.describe}`);
    }
    if (this.closed) return;
    const snapshot = res.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString() })).filter((kv) => scope.accept(kv.key));
    this.lastSeen = BigInt(res.header.revision);
    this.deliver(() => handlers.onResync(snapshot, res.header.revision, reason));
    this.attach();
  }

  private attach(): void {
    if (this.closed) return;
    // watcher(), not create(): listeners must be in place before the first response can
    // arrive, and create() never settles while etcd is down.
    const w = this.opts.client
      .watch()
      .inRange(this.opts.scope.range)
      .withPreviousKV()
      .startRevision(String(this.lastSeen + 1n))
      .watcher();
    this.watcher = w;
    const current = () => this.watcher === w && !this.closed;
    w.on('connected', (res) => current() && this.onConnected(res));
    w.on('data', (res) => current() && this.onData(res));
    w.on('disconnected', (err) => {
      if (!current()) return;
      if (!this.inOutage) {
        this.inOutage = true;
        this.report(toRegistryError(err, this.opts.endpoints, `watching ${this.opts.scope.describe} (resuming after revision ${this.lastSeen})`));
      }
      this.retryLater(() => this.attach());
    });
    w.on('error', (err) => {
      if (!current()) return;
      this.watcher = undefined; // etcd3 has already dropped a canceled watcher
      this.onCanceled(err).catch((e: unknown) => this.report(e));
    });
  }

  private onConnected(res: IWatchResponse): void {
    this.backoffMs = this.minBackoffMs;
    if (this.inOutage) {
      this.inOutage = false;
      this.opts.log.info({ scope: this.opts.scope.describe, after: String(this.lastSeen) }, 'etcd watch resumed');
    }
    if (BigInt(res.header.revision) < this.lastSeen) {
      // etcd's history is behind what we have seen (restored from a backup, data dir
      // lost; or a lagging member, where a snapshot is merely costlier than waiting):
      // no delta can bridge that, a fresh snapshot always can.
      this.dropWatcher();
      this.resyncOrRetry();
    }
  }

  private onData(res: IWatchResponse): void {
    if (res.events.length === 0) {
      // A progress notification: etcd sends those only to a watcher that is caught up,
      // so nothing up to this revision is pending. Moving on keeps a quiet watch from
      // needing a full resync after compaction.
      const rev = BigInt(res.header.revision);
      if (rev > this.lastSeen) this.lastSeen = rev;
      return;
    }
    const events: RegistryEvent[] = [];
    let newest = this.lastSeen;
    for (const ev of res.events) {
      const rev = BigInt(ev.kv.mod_revision);
      if (rev <= this.lastSeen) continue; // delivered before a reconnect
      if (rev > newest) newest = rev;
      const event = toRegistryEvent(ev);
      if (this.opts.scope.accept(event.key)) events.push(event);
    }
    if (newest === this.lastSeen) return;
    this.lastSeen = newest;
    if (events.length > 0) this.deliver(() => this.opts.handlers.onEvents(events, String(newest)));
  }

  private async onCanceled(err: Error): Promise<void> {
    const { client, scope } = this.opts;
    try {
      // A read at the revision we would resume after tells compaction from anything else.
      await client.get(scope.range.start).revision(String(this.lastSeen)).exec();
    } catch (probeErr) {
      if (probeErr instanceof GRPCOutOfRangeError) {
        this.resyncOrRetry();
      } else {
        // Cannot tell now (etcd unreachable?): watch again; a compacted start is canceled again.
        this.report(toRegistryError(probeErr, this.opts.endpoints, `checking the watch on ${scope.describe}`));
        this.retryLater(() => this.attach());
      }
      return;
    }
    this.report(new SwitchyardError('E_REGISTRY', `etcd canceled the watch on ${scope.describe}: ${describeEtcdError(err)}`, { cause: err }));
    this.retryLater(() => this.attach());
  }

  private resyncOrRetry(): void {
    if (this.closed) return;
    this.resync('compacted').catch((err: unknown) => {
      this.report(err);
      this.retryLater(() => this.resyncOrRetry());
    });
  }

  private dropWatcher(): void {
    const w = this.watcher;
    this.watcher = undefined;
    w?.cancel().catch((err: unknown) => this.opts.log.debug({ err }, 'etcd watch cancel failed'));
  }

  private retryLater(fn: () => void): void {
    if (this.closed) return;
    this.dropWatcher();
    clearTimeout(this.retryTimer);
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.maxBackoffMs, this.backoffMs * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.closed) fn();
    }, delay);
  }

  /** Run a consumer callback; what it throws is reported, never thrown into etcd3's emitter. */
  private deliver(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.report(err instanceof SwitchyardError ? err : new SwitchyardError('E_INTERNAL', 'a registry watch handler failed', { cause: err }));
    }
  }

  private report(err: unknown): void {
    const error = err instanceof Error ? err : new SwitchyardError('E_INTERNAL', String(err));
    const { handlers } = this.opts;
    if (!handlers.onError) {
      this.opts.log.warn({ err: error, scope: this.opts.scope.describe }, 'etcd watch problem');
      return;
    }
    try {
      handlers.onError(error); // called as a method: handlers may be a class instance
    } catch (e) {
      this.opts.log.error({ err: e }, 'registry watch onError handler failed');
    }
  }
}

function toRegistryEvent(ev: IEvent): RegistryEvent {
  const key = ev.kv.key.toString();
  const revision = ev.kv.mod_revision;
  const prevLease = ev.prev_kv ? leaseOf(ev.prev_kv) : undefined;
  const prev = ev.prev_kv ? { prevValue: ev.prev_kv.value.toString(), ...(prevLease ? { prevLease } : {}) } : {};
  if (ev.type === 'Delete') return { type: 'delete', key, revision, ...prev };
  const lease = leaseOf(ev.kv);
  return { type: 'put', key, value: ev.kv.value.toString(), revision, ...(lease ? { lease } : {}), ...prev };
}
