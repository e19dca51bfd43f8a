/**
 * The #ops feed poster: one replica at a time (an etcd election) watches the registry from
 * the persisted position and hands changes to the pacer; after each batch is posted the
 * position moves past it. So a restarted or newly elected poster resumes exactly where the
 * last post ended — nothing reposted, nothing skipped — and a history etcd compacted away
 * is reported as a gap.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../core/metrics.js';
import type { PacerGate } from './pacer.js';
import type { ChangeHandlers, ChangeSource, PosterElection, PosterTerm, PositionStore } from './ports.js';
import { maxRevision, type FeedChange, type FeedItem } from './types.js';

/** What the service needs of the channel's pacer (FeedPacer). */
export interface ChangeQueue {
  setGate(gate: PacerGate): void;
  enqueue(items: FeedItem[]): void;
  dropChanges(): number;
  hasPendingChanges(): boolean;
  stop(): Promise<void>;
}

export interface FeedServiceOptions {
  source: ChangeSource;
  position: PositionStore;
  election: PosterElection;
  pacer: ChangeQueue;
  log: Logger;
  metrics?: Metrics;
  /** How often a position moved only by unreported keys is saved. Default 30 s. */
  idlePersistMs?: number;
  /** Retry delay while etcd cannot answer. Default 500 ms doubling to 5 s. */
  retry?: { minMs: number; maxMs: number };
  /**
   * What this feed posts of a batch (its route, its mutes). Asked at posting time, so a
   * mute applies to what is still queued; what it leaves out still moves the position.
   */
  filter?: (changes: FeedChange[]) => Promise<FeedChange[]>;
  /**
   * What the elected replica does, for its log lines ("this replica now <duty>"). Default
   * "posts the #ops feed"; the history recorder runs on this service too and must not claim that.
   */
  duty?: string;
}

export class FeedService {
  private term: PosterTerm | undefined;
  private watch: { close(): Promise<void> } | undefined;
  /** Last position persisted in this term. */
  private written = 0n;
  /** Newest revision seen that carried nothing to post. */
  private quietRevision = 0n;
  /**
   * Newest revision counted in the metrics, across terms: a replica that regains the role
   * resumes from the saved position and sees again what it saw before losing it.
   */
  private counted = 0n;
  private idleTimer: NodeJS.Timeout | undefined;
  private persisting: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private readonly log: Logger;
  private readonly retry: { minMs: number; maxMs: number };
  private readonly duty: string;

  constructor(private readonly o: FeedServiceOptions) {
    this.log = o.log.child({ component: 'feed' });
    this.retry = o.retry ?? { minMs: 500, maxMs: 5000 };
    this.duty = o.duty ?? 'posts the #ops feed';
  }

  /** True while this replica is the poster. */
  get leading(): boolean {
    return this.term !== undefined;
  }

  /** True once this replica, as the poster, is watching from the saved position. */
  get watching(): boolean {
    return this.watch !== undefined;
  }

  start(): void {
    this.o.pacer.setGate({ beforeSend: (items) => this.beforeSend(items), afterSend: (items) => this.afterSend(items) });
    this.o.election.run({
      elected: (term) => {
        this.lead(term).catch((err: unknown) => this.log.error({ err }, 'could not start posting the feed'));
      },
      lost: (term, err) => {
        this.demote(term, err ? `the poster role was lost: ${err.message}` : 'the poster role was lost').catch((e: unknown) =>
          this.log.error({ err: e }, 'feed demotion failed'),
        );
      },
    });
    this.idleTimer = setInterval(() => this.persistQuiet(), this.o.idlePersistMs ?? 30_000);
    this.idleTimer.unref();
  }

  /**
   * Stop watching, let the batch being posted finish and its position be saved, then
   * resign so another replica takes over at once. Queued changes are left to the next
   * poster, which starts from the saved position. Stops the pacer too (other events
   * still queued get their bounded chance to be posted).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.idleTimer);
    const watch = this.watch;
    this.watch = undefined;
    await watch?.close();
    this.o.pacer.dropChanges();
    // Lets the batch in flight finish (bounded), so its position is saved before resigning.
    await this.o.pacer.stop();
    await this.persisting;
    if (this.term) await this.demote(this.term, 'stopping');
    await this.o.election.stop();
  }

  private async lead(term: PosterTerm): Promise<void> {
    if (this.stopped) return;
    this.term = term;
    this.o.metrics?.feedLeader.set(1);
    this.log.info({ replica: term.replica }, `this replica now ${this.duty}`);
    for (let attempt = 0; this.term === term && !this.stopped; attempt++) {
      try {
        const { position, current } = await this.o.position.read();
        let from = position;
        if (from === undefined) {
          // First start: report from now on, and remember it so a restart does too.
          from = current;
          if (!(await this.o.position.write(from, term))) return await this.demote(term, 'not the poster any more');
        }
        if (this.term !== term) return;
        this.written = BigInt(from);
        this.quietRevision = BigInt(from);
        const watch = await this.o.source.open(from, this.handlers(term));
        if (this.term !== term || this.stopped) {
          await watch.close();
          return;
        }
        this.watch = watch;
        this.log.info({ from }, 'feed resumes after revision');
        return;
      } catch (err) {
        this.log.warn({ err }, 'could not read the feed position; retrying');
        await sleep(this.backoff(attempt));
      }
    }
  }

  private async demote(term: PosterTerm, why: string): Promise<void> {
    if (this.term !== term) return;
    this.term = undefined;
    this.o.metrics?.feedLeader.set(0);
    const dropped = this.o.pacer.dropChanges();
    this.log.info({ why, left: dropped }, `this replica no longer ${this.duty}`);
    const watch = this.watch;
    this.watch = undefined;
    await watch?.close();
  }

  private handlers(term: PosterTerm): ChangeHandlers {
    const mine = () => this.term === term && !this.stopped;
    return {
      changes: (changes, revision) => {
        if (!mine()) return;
        this.observe(changes);
        if (changes.length === 0) this.quietRevision = BigInt(revision);
        this.o.pacer.enqueue(changes.map((change) => ({ change, seenAt: Date.now() })));
      },
      gap: (change, revision) => {
        if (!mine()) return;
        this.o.metrics?.feedGaps.inc();
        this.log.warn({ revision }, 'etcd compacted the history the feed needed; reporting a gap');
        this.o.pacer.enqueue([{ change, seenAt: Date.now() }]);
      },
      error: (err) => this.log.warn({ err }, 'feed watch problem'),
    };
  }

  private observe(changes: FeedChange[]): void {
    const m = this.o.metrics;
    if (!m) return;
    const after = this.counted;
    for (const c of changes) {
      const revision = BigInt(c.revision);
      if (revision <= after) continue;
      if (revision > this.counted) this.counted = revision;
      m.feedChanges.inc({ kind: c.kind });
      if (c.apply) {
        const labels = { method: c.apply.method, result: c.apply.ok ? 'ok' : 'error' };
        m.applies.inc(labels);
        if (c.apply.durationMs !== undefined) m.applyDuration.observe(labels, c.apply.durationMs / 1000);
      }
    }
  }

  private async beforeSend(items: FeedItem[]): Promise<FeedItem[]> {
    if (!items.some((i) => i.change)) return items;
    const term = this.term;
    // Not the poster (any more): the current one reports these from the position.
    if (!term || !(await this.stillCurrent(term))) return items.filter((i) => !i.change);
    if (!this.o.filter) return items;
    const kept = new Set(await this.o.filter(items.flatMap((i) => (i.change ? [i.change] : []))));
    const out = items.filter((i) => !i.change || kept.has(i.change));
    // Nothing of the batch is posted: it is done all the same, and a restart must not redo it.
    const revision = maxRevision(items);
    if (revision !== undefined && !out.some((i) => i.change)) await this.persist(revision, term);
    return out;
  }

  private async afterSend(items: FeedItem[]): Promise<void> {
    const revision = maxRevision(items);
    const term = this.term;
    if (revision !== undefined && term) await this.persist(revision, term);
  }

  /** Ask etcd until it answers: posting while unsure could post what another poster posts. */
  private async stillCurrent(term: PosterTerm): Promise<boolean> {
    for (let attempt = 0; this.term === term && !this.stopped; attempt++) {
      try {
        if (await term.isCurrent()) return true;
        await this.demote(term, 'another replica holds the poster role');
        return false;
      } catch (err) {
        this.log.warn({ err }, 'cannot tell whether this replica still posts the feed; asking again');
        await sleep(this.backoff(attempt));
      }
    }
    return this.term === term;
  }

  private persist(revision: string, term: PosterTerm): Promise<void> {
    const next = this.persisting.then(() => this.persistNow(revision, term));
    this.persisting = next.catch(() => undefined);
    return next;
  }

  private async persistNow(revision: string, term: PosterTerm): Promise<void> {
    if (BigInt(revision) <= this.written) return;
    // While stopping, one try only (bounded by the etcd deadline): shutdown must not wait
    // out an unreachable etcd; the next poster re-posts from the last saved position.
    for (let attempt = 0; this.term === term && (!this.stopped || attempt < 1); attempt++) {
      try {
        if (await this.o.position.write(revision, term)) {
          this.written = BigInt(revision);
          return;
        }
        return await this.demote(term, 'the position was not saved: another replica holds the poster role');
      } catch (err) {
        // Blocks the pacer until etcd answers: posting on without a saved position would
        // make a restart repeat everything since.
        this.log.warn({ err, revision }, 'could not save the feed position; retrying');
        await sleep(this.backoff(attempt));
      }
    }
  }

  /** A position moved only by keys the feed does not report (locks, confirmations) is saved now and then. */
  private persistQuiet(): void {
    const term = this.term;
    if (!term || this.quietRevision <= this.written || this.o.pacer.hasPendingChanges()) return;
    this.persist(String(this.quietRevision), term).catch((err: unknown) => this.log.warn({ err }, 'could not save the feed position'));
  }

  private backoff(attempt: number): number {
    return Math.min(this.retry.maxMs, this.retry.minMs * 2 ** Math.min(attempt, 16));
  }
}
