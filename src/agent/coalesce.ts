/**
 * Burst coalescing for the apply loop. A lone change — one that follows the previous change
 * by at least `quietMs` — runs at once (setImmediate: right after the I/O callbacks of this
 * turn, so the rest of its watch batch joins it, without the millisecond a 0 ms timer costs):
 * waiting out a quiet period that nothing breaks would only add latency. A change that
 * follows another within `quietMs` is part of a burst: it runs once things have been quiet
 * for `quietMs`, but never later than `maxWaitMs` after the burst's first poke. Never two
 * runs at once (pokes during a run schedule exactly one more).
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
  private burstStarted: number | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  /** When the previous poke came (ms): one within `quietMs` of it belongs to a burst. */
  private lastPoke = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly task: () => Promise<void>,
    private readonly opts: CoalescerOptions,
  ) {}

  /** Something changed. */
  poke(): void {
    if (this.stopped) return;
    const now = Date.now();
    const sincePrevious = now - this.lastPoke;
    this.lastPoke = now;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.immediate) return;
    if (this.timer === undefined && sincePrevious >= this.opts.quietMs) {
      this.immediate = setImmediate(() => this.fire());
      return;
    }
    this.burstStarted ??= now;
    const deadline = this.burstStarted + this.opts.maxWaitMs;
    const delay = Math.max(0, Math.min(this.opts.quietMs, deadline - now));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.fire(), delay);
  }

  private fire(): void {
    this.timer = undefined;
    this.immediate = undefined;
    this.burstStarted = undefined;
    this.again = false;
    const run = this.task()
      .catch((err: unknown) => this.opts.onError(err))
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.poke();
        }
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
