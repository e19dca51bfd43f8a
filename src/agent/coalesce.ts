/**
 * Burst coalescing for the apply loop: run `task` once things have been quiet for
 * `quietMs`, but never later than `maxWaitMs` after the first poke of a burst; never two
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
  private burstStarted: number | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly task: () => Promise<void>,
    private readonly opts: CoalescerOptions,
  ) {}

  /** Something changed. */
  poke(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    const now = Date.now();
    this.burstStarted ??= now;
    const deadline = this.burstStarted + this.opts.maxWaitMs;
    const delay = Math.max(0, Math.min(this.opts.quietMs, deadline - now));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.fire(), delay);
  }

  private fire(): void {
    this.timer = undefined;
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
    this.timer = undefined;
    await this.running;
  }

  /** True when no run is in progress or scheduled. */
  get idle(): boolean {
    return !this.running && !this.timer;
  }
}
