/**
 * Events API delivery is at-least-once: Slack retries (X-Slack-Retry-Num 1..3, up to ~5 min
 * after the first try) whenever it did not see our 200 in time. A command must execute at
 * most once, so every event_id is remembered and later deliveries are dropped. Slash
 * commands are never retried by Slack and need no entry here.
 */
export interface EventDeduper {
  /**
   * Mark `id` and report whether it was already marked. Marking and checking are one step
   * so two concurrent deliveries cannot both see "new". May be async so an etcd-backed
   * implementation (a create-if-absent transaction on a leased key) can span replicas.
   */
  seen(id: string): boolean | Promise<boolean>;
}

export interface MemoryDeduperOptions {
  /** Longer than Slack's retry schedule (immediately, +1 min, +5 min). */
  ttlMs?: number;
  /** Bound on memory under an event flood; the oldest ids go first. */
  maxEntries?: number;
  now?: () => number;
}

/** One process's memory of recent event ids. */
export class MemoryDeduper implements EventDeduper {
  private readonly expiries = new Map<string, number>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(opts: MemoryDeduperOptions = {}) {
    this.ttlMs = opts.ttlMs ?? 15 * 60_000;
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  seen(id: string): boolean {
    const now = this.now();
    this.prune(now);
    const expiry = this.expiries.get(id);
    if (expiry !== undefined && expiry > now) return true;
    // Re-insert so Map order stays expiry order (the TTL is constant) and prune can stop early.
    this.expiries.delete(id);
    this.expiries.set(id, now + this.ttlMs);
    if (this.expiries.size > this.maxEntries) {
      const oldest = this.expiries.keys().next().value;
      if (oldest !== undefined) this.expiries.delete(oldest);
    }
    return false;
  }

  get size(): number {
    return this.expiries.size;
  }

  private prune(now: number): void {
    for (const [id, expiry] of this.expiries) {
      if (expiry > now) break;
      this.expiries.delete(id);
    }
  }
}
