/**
 * Posting pace for one channel: at most one message per `minIntervalMs` (Slack allows
 * about one a second per channel), bursts coalesced, nothing dropped silently.
 *
 * Items queue up; when the channel is free (and a short quiet period has passed, so a
 * burst is taken whole) everything queued becomes one batch. The outlet turns a batch
 * into messages — the first one top-level, the rest replies in its thread — and each
 * message gets its own slot. A refused post is retried: after Retry-After for a rate
 * limit, with backoff otherwise; a message the outlet can simplify (too big, bad blocks)
 * is replaced by its simpler form. The gate lets the feed service check before a batch
 * that it may still post changes, and persist its position after.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../core/log.js';
import type { FeedItem } from './types.js';

export type SendFailure = { retryAfterMs: number } | { replaceWith: unknown } | { backoff: true };

export interface FeedOutlet<M> {
  /** Messages for a batch: the first top-level, the others in its thread. */
  plan(items: FeedItem[]): M[];
  /** Post; resolves with the message's ts (the thread to reply in). */
  send(message: M, threadTs: string | undefined): Promise<string | undefined>;
  /** What to do about a failed send (a `replaceWith` must be an M). */
  classify(err: unknown, message: M): SendFailure;
  /** For logs: the message's plain text. */
  describe(message: M): string;
}

export interface PacerGate {
  /** Before a batch: the items that may still be posted. */
  beforeSend(items: FeedItem[]): Promise<FeedItem[]>;
  /** After every message of a batch was posted. */
  afterSend(items: FeedItem[]): Promise<void>;
}

export interface PacerObserver {
  posted?(): void;
  rateLimited?(): void;
  failed?(): void;
}

export interface PacerOptions {
  /** Default 1000: Slack's per-channel posting rate. */
  minIntervalMs?: number;
  /** Wait for this much quiet after the last item before posting a batch. Default 200. */
  quietMs?: number;
  /** …but never longer than this after the first item. Default 1000. */
  maxWaitMs?: number;
  /** Backoff bounds for failures other than rate limits. */
  backoff?: { minMs: number; maxMs: number };
  /** How long stop() lets a batch in flight finish. Default 5000. */
  stopTimeoutMs?: number;
  now?: () => number;
}

class Stopped extends Error {}

export class FeedPacer<M> {
  private queue: FeedItem[] = [];
  /** Items taken for the batch being posted (still unposted: counted in depth and lag). */
  private inFlight: FeedItem[] = [];
  private loop: Promise<void> | undefined;
  private lastSentAt = Number.NEGATIVE_INFINITY;
  private lastArrival = 0;
  private stopping = false;
  private readonly abort = new AbortController();
  private gate: PacerGate = { beforeSend: async (items) => items, afterSend: async () => {} };
  private observer: PacerObserver = {};
  private readonly idleWaiters: (() => void)[] = [];
  private readonly o: Required<Omit<PacerOptions, 'backoff'>> & { backoff: { minMs: number; maxMs: number } };

  constructor(
    private readonly outlet: FeedOutlet<M>,
    private readonly log: Logger,
    opts: PacerOptions = {},
  ) {
    this.o = {
      minIntervalMs: opts.minIntervalMs ?? 1000,
      quietMs: opts.quietMs ?? 200,
      maxWaitMs: opts.maxWaitMs ?? 1000,
      backoff: opts.backoff ?? { minMs: 1000, maxMs: 30_000 },
      stopTimeoutMs: opts.stopTimeoutMs ?? 5000,
      now: opts.now ?? Date.now,
    };
  }

  setGate(gate: PacerGate): void {
    this.gate = gate;
  }

  setObserver(observer: PacerObserver): void {
    this.observer = observer;
  }

  enqueue(items: FeedItem[]): void {
    if (items.length === 0) return;
    if (this.stopping) {
      for (const i of items) this.log.warn({ item: i }, 'feed is stopping: item not posted');
      return;
    }
    this.queue.push(...items);
    this.lastArrival = this.o.now();
    this.kick();
  }

  /**
   * Forget queued registry changes (this replica stopped being the poster: the next one
   * reports them from the persisted position). Other events stay.
   */
  dropChanges(): number {
    const before = this.queue.length;
    this.queue = this.queue.filter((i) => !i.change);
    return before - this.queue.length;
  }

  /** Items not yet posted, the batch in flight included. */
  get depth(): number {
    return this.queue.length + this.inFlight.length;
  }

  /** Seconds the oldest unposted item has waited; 0 when there is none. */
  lagSeconds(): number {
    const oldest = this.inFlight[0]?.seenAt ?? this.queue[0]?.seenAt;
    return oldest === undefined ? 0 : Math.max(0, this.o.now() - oldest) / 1000;
  }

  hasPendingChanges(): boolean {
    return this.inFlight.some((i) => i.change) || this.queue.some((i) => i.change);
  }

  /** Resolves once nothing is queued or in flight. */
  idle(): Promise<void> {
    if (this.depth === 0 && !this.loop) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stop taking items; let the batch in flight finish (bounded by stopTimeoutMs), then
   * abandon what is left. Abandoned registry changes are not lost: the position was not
   * moved past them. Abandoned other events are logged.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    const loop = this.loop;
    if (loop) {
      if (this.inFlight.length > 0) {
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.o.stopTimeoutMs)));
        await Promise.race([loop, timedOut]);
        clearTimeout(timer);
      }
      // Ends the waits (pacing, Retry-After, backoff); a call already made runs to its end.
      this.abort.abort();
      await loop;
    }
    this.abandon(this.queue.splice(0));
    this.settleIdle();
  }

  /** Registry changes come back from the saved position; other events only the log keeps. */
  private abandon(items: FeedItem[]): void {
    for (const i of items) {
      if (i.event) this.log.warn({ event: i.event }, 'feed event not posted before shutdown');
    }
  }

  private kick(): void {
    if (this.loop || this.stopping) return;
    this.loop = this.run()
      .catch((err: unknown) => {
        if (!(err instanceof Stopped)) this.log.error({ err }, 'feed pacer failed');
      })
      .finally(() => {
        this.loop = undefined;
        this.inFlight = [];
        if (this.queue.length && !this.stopping) this.kick();
        else this.settleIdle();
      });
  }

  private settleIdle(): void {
    if (this.depth > 0 || this.loop) return;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private async run(): Promise<void> {
    while (this.queue.length > 0 && !this.stopping) {
      await this.gather();
      if (this.stopping) return;
      this.inFlight = this.queue.splice(0);
      try {
        await this.post(this.inFlight);
      } catch (err) {
        if (err instanceof Stopped) {
          this.abandon(this.inFlight);
          throw err;
        }
        // A bug, not Slack: retrying would fail the same way. Registry changes come back
        // from the position on the next start; the log keeps the rest.
        this.log.error({ err, items: this.inFlight }, 'feed batch could not be posted');
      }
      this.inFlight = [];
    }
  }

  private async post(batch: FeedItem[]): Promise<void> {
    const items = await this.gate.beforeSend(batch);
    if (items.length === 0) return;
    let threadTs: string | undefined;
    for (const [i, message] of this.outlet.plan(items).entries()) {
      const ts = await this.deliver(message, i === 0 ? undefined : threadTs);
      if (i === 0) threadTs = ts;
    }
    await this.gate.afterSend(items);
  }

  /** Wait for the channel's next slot and for the burst to go quiet. */
  private async gather(): Promise<void> {
    const first = this.queue[0]!.seenAt;
    for (;;) {
      const now = this.o.now();
      const quietUntil = Math.min(this.lastArrival + this.o.quietMs, first + this.o.maxWaitMs);
      const until = Math.max(quietUntil, this.lastSentAt + this.o.minIntervalMs);
      if (now >= until) return;
      await this.sleep(until - now);
    }
  }

  private async deliver(first: M, threadTs: string | undefined): Promise<string | undefined> {
    let message = first;
    for (let attempt = 0; ; attempt++) {
      const wait = this.lastSentAt + this.o.minIntervalMs - this.o.now();
      if (wait > 0) await this.sleep(wait);
      try {
        const ts = await this.outlet.send(message, threadTs);
        this.lastSentAt = this.o.now();
        this.observer.posted?.();
        return ts;
      } catch (err) {
        // A refused call still counts against the channel's rate.
        this.lastSentAt = this.o.now();
        const how = this.outlet.classify(err, message);
        if ('retryAfterMs' in how) {
          this.observer.rateLimited?.();
          this.log.warn({ retryAfterMs: how.retryAfterMs, pending: this.depth }, 'Slack rate-limited the feed; waiting as told');
          await this.sleep(how.retryAfterMs);
        } else if ('replaceWith' in how) {
          this.observer.failed?.();
          this.log.error({ err, text: this.outlet.describe(message) }, 'feed message refused; posting a simpler one');
          message = how.replaceWith as M;
        } else {
          this.observer.failed?.();
          const delay = Math.min(this.o.backoff.maxMs, this.o.backoff.minMs * 2 ** Math.min(attempt, 16));
          // Logged with its text every time: if Slack never takes it, the log still has it.
          this.log.error({ err, attempt, retryInMs: delay, text: this.outlet.describe(message) }, 'feed message not posted; will retry');
          await this.sleep(delay);
        }
      }
    }
  }

  private async sleep(ms: number): Promise<void> {
    try {
      await sleep(ms, undefined, { signal: this.abort.signal });
    } catch {
      throw new Stopped();
    }
  }
}
