/**
 * Burst coalescing for the apply loop. A change that arrives while nothing is being applied
 * runs at once (setImmediate: right after the I/O callbacks of this turn, so the rest of its
 * watch batch joins it, without the millisecond a 0 ms timer costs): waiting out a quiet
 * period would only add latency, and there is nothing to coalesce it with.
 *
 * Changes that arrive during a run wait for it (never two runs at once). One such change is
 * still a lone change that happened to overlap a run: it runs as soon as the run ends. Two
 * or more are a burst: they run once things have been quiet for `quietMs`, but never later
 * than `maxWaitMs` after the first of them. Whether changes follow each other closely is
 * judged against runs, not against the previous change: a change 3 ms after the previous
 * one, whose apply has already finished, has nothing left to join.
 */
export interface CoalescerOptions {
  quietMs: number;
  maxWaitMs: number;
  /** Called with whatever the task throws (the task is expected to report its own failures). */
  onError(err: unknown): void;
}

export class Coalescer {
  private timer: NodeJS.Timeout | undefined;
  /** The lone change's run, due right after this turn's I/O. */
  private immediate: NodeJS.Immediate | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** Changes that arrived during the run in progress (0 = nothing to do after it). */
  private during = 0;
  /** When the burst now waiting began (its first change) and when its last change came (ms). */
  private burstStarted: number | undefined;
  private lastPoke = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly task: () => Promise<void>,
    private readonly opts: CoalescerOptions,
  ) {}

  /** Something changed. */
  poke(): void {
    if (this.stopped) return;
    const now = Date.now();
    this.lastPoke = now;
    if (this.running) {
      if (this.during++ === 0) this.burstStarted = now;
      return;
    }
    if (this.immediate) return;
    if (this.timer !== undefined) {
      this.waitForQuiet(now);
      return;
    }
    this.immediate = setImmediate(() => this.fire());
  }

  /** (Re)arm the burst timer: `quietMs` after the last change, at most `maxWaitMs` after the first. */
  private waitForQuiet(now: number): void {
    this.burstStarted ??= now;
    const quietAt = this.lastPoke + this.opts.quietMs;
    const deadline = this.burstStarted + this.opts.maxWaitMs;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.fire(), Math.max(0, Math.min(quietAt, deadline) - now));
  }

  private fire(): void {
    this.timer = undefined;
    this.immediate = undefined;
    this.burstStarted = undefined;
    const run = this.task()
      .catch((err: unknown) => this.opts.onError(err))
      .finally(() => {
        this.running = undefined;
        const during = this.during;
        this.during = 0;
        if (during === 0 || this.stopped) return;
        // One change waited for the run: it has waited enough. More: a burst is under way.
        if (during === 1) this.immediate = setImmediate(() => this.fire());
        else this.waitForQuiet(Date.now());
      });
    this.running = run;
  }

  /** Stop scheduling; resolves once a run in progress has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    await this.running;
  }

  /** True when no run is in progress or scheduled. */
  get idle(): boolean {
    return !this.running && !this.timer && !this.immediate;
  }
}
