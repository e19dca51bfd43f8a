/**
 * The seen-set of Slack requests in etcd, so every replica — a second one, or this one
 * restarted — refuses a request another has executed. One key per identity of a request
 * (`<switchyard>/dedupe/event/<event_id>`, `…/trigger/<trigger_id>`, `…/sig/<sha256>`),
 * on a lease that outlives every way the same request can come back.
 */
import { randomBytes } from 'node:crypto';
import { EtcdLeaseInvalidError } from 'etcd3';
import { z } from 'zod';
import type { ClaimResult, RequestDeduper, SeenRecord } from '../../core/dedupe.js';
import { SwitchyardError } from '../../core/errors.js';
import { withinDeadline } from './deadline.js';
import { toRegistryError } from './errors.js';
import { putOp, rangeOp, unchanged } from './ops.js';
import type { EtcdRegistry } from './registry.js';

/** An etcd leader election (1–2 s here) plus the client's failover to another member fits with room to spare. */
const CLAIM_MIN_BUDGET_MS = 10_000;

/**
 * How long a request stays "seen". A signed request is accepted while its timestamp is
 * within ±5 min of our clock, so the same bytes can arrive for 10 min; Slack's retries of an
 * event end about 6 min after the first try. One more minute covers clock skew between replicas.
 */
export const SEEN_TTL_SEC = 11 * 60;

export interface EtcdDeduperOptions {
  /** Default SEEN_TTL_SEC. */
  ttlSec?: number;
  /**
   * Keys written within this long share one lease (granted with ttl + this), so a claim
   * costs no lease grant of its own. Default 60 s.
   */
  leaseShareSec?: number;
  /**
   * Budget of one claim; past it the request is refused rather than run unchecked. A claim
   * slower than Slack's 3 s ack deadline is acked first (onceMiddleware), so it may outlast
   * an etcd leader election and the client's failover: default `etcd.commandTimeout`, and
   * at least CLAIM_MIN_BUDGET_MS.
   */
  timeoutMs?: number;
  now?: () => number;
}

const recordSchema = z.object({ requestId: z.string().max(200), at: z.string().max(40) });

interface SharedLease {
  id: string;
  /** Keys may use it until then (ms). */
  until: number;
}

interface Waiting {
  keys: string[];
  record: SeenRecord;
  /** Written beside the record: an attempt that timed out but landed is recognised as this claim's own. */
  nonce: string;
  settle: (r: ClaimResult | Error) => void;
}

/** Claims per transaction; a burst larger than this takes several, one after another. */
const MAX_BATCH = 128;

/**
 * Claims go to etcd in batches, one transaction in flight at a time, and everything that
 * arrives meanwhile rides in the next (group commit): a burst of 50 slash commands costs two
 * or three transactions before their acks instead of 50. A batch is one create-if-absent
 * transaction over all its keys; when some key exists, the same transaction reads them all
 * back, the requests owning an existing key are duplicates, and the others try again among
 * themselves. Each round settles at least one request, and etcd serialises the rounds of
 * every replica, so of two deliveries sharing a key exactly one is told "new".
 */
export class EtcdDeduper implements RequestDeduper {
  private readonly ttlSec: number;
  private readonly shareSec: number;
  private readonly timeoutMs: number;
  private readonly now: () => number;
  private lease: Promise<SharedLease> | undefined;
  private queue: Waiting[] = [];
  private flushing = false;

  constructor(
    private readonly registry: EtcdRegistry,
    opts: EtcdDeduperOptions = {},
  ) {
    this.ttlSec = opts.ttlSec ?? SEEN_TTL_SEC;
    this.shareSec = opts.leaseShareSec ?? 60;
    this.timeoutMs = opts.timeoutMs ?? Math.max(registry.commandTimeoutMs, CLAIM_MIN_BUDGET_MS);
    this.now = opts.now ?? Date.now;
  }

  claim(keys: readonly string[], record: SeenRecord): Promise<ClaimResult> {
    if (keys.length === 0) return Promise.resolve({ duplicate: false });
    // Checked here, so one bad key fails its own request and not the batch it would join.
    const fullKeys = keys.map((k) => this.registry.layout.dedupeKey(k));
    return new Promise<ClaimResult>((resolve, reject) => {
      // Past the budget the request is refused (not run); a batch that commits later anyway
      // leaves its keys claimed, which errs on the side of "at most once".
      const timer = setTimeout(() => {
        waiting.settle(
          toRegistryError(
            new SwitchyardError('E_TIMEOUT', `etcd (${this.registry.endpoints.join(', ')}) did not answer within ${this.timeoutMs} ms`),
            this.registry.endpoints,
            'checking whether a Slack request already ran',
          ),
        );
      }, this.timeoutMs);
      let settled = false;
      const waiting: Waiting = {
        keys: fullKeys,
        record,
        nonce: randomBytes(8).toString('hex'),
        settle: (r) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          if (r instanceof Error) reject(r);
          else resolve(r.duplicate ? { ...r, key: keys[fullKeys.indexOf(r.key)] ?? r.key } : r);
        },
      };
      this.queue.push(waiting);
      this.kick();
    });
  }

  private kick(): void {
    if (this.flushing || this.queue.length === 0) return;
    this.flushing = true;
    const batch = this.queue.splice(0, MAX_BATCH);
    void this.flush(batch).finally(() => {
      this.flushing = false;
      this.kick();
    });
  }

  private async flush(batch: Waiting[]): Promise<void> {
    // The same key twice in one transaction is refused by etcd; the later request is a
    // duplicate of the earlier one anyway.
    const firstClaim = new Map<string, Waiting>();
    const toWrite: Waiting[] = [];
    for (const w of batch) {
      const clash = w.keys.find((k) => firstClaim.has(k));
      if (clash) {
        w.settle({ duplicate: true, key: clash, original: firstClaim.get(clash)!.record });
        continue;
      }
      for (const k of w.keys) firstClaim.set(k, w);
      toWrite.push(w);
    }
    if (toWrite.length === 0) return;
    const deadline = this.now() + this.timeoutMs;
    let pending = toWrite;
    try {
      for (let leaseRetry = false, pause = 50; pending.length > 0; ) {
        const keys = pending.flatMap((w) => w.keys);
        let res: Awaited<ReturnType<EtcdRegistry['client']['kv']['txn']>>;
        try {
          const lease = await this.currentLease(deadline);
          // Within the claim's deadline but without a gRPC deadline of our own: the client
          // splits what is left into short attempts over the endpoints, so a member that cannot
          // answer (killed, or a follower while a new leader is elected) costs a slice of the
          // budget and the next endpoint is tried, instead of the first attempt taking it all.
          res = await withinDeadline(deadline - this.now(), () =>
            this.registry.client.kv.txn({
              compare: keys.map((k) => unchanged(k, undefined)),
              success: pending.flatMap((w) => w.keys.map((k) => putOp(k, JSON.stringify({ ...w.record, nonce: w.nonce }), lease.id))),
              failure: keys.map((k) => rangeOp(k)),
            }),
          );
        } catch (err) {
          // A lease revoked or expired under us (etcd restored from a snapshot, a clock
          // jump): take a fresh one and try once more.
          if (err instanceof EtcdLeaseInvalidError && !leaseRetry) {
            leaseRetry = true;
            this.lease = undefined;
            continue;
          }
          // Whatever else a dying leader answers with, tried again while the budget lasts: the
          // request is acked already, and the nonce tells a retry that an attempt landed.
          if (this.now() + pause >= deadline) throw err;
          await new Promise((r) => setTimeout(r, pause));
          pause = Math.min(pause * 2, 1000);
          continue;
        }
        if (res.succeeded) {
          for (const w of pending) w.settle({ duplicate: false });
          return;
        }
        const existing = new Map<string, Buffer>();
        res.responses.forEach((r, i) => {
          const kv = r.response_range?.kvs[0];
          if (kv) existing.set(keys[i]!, kv.value);
        });
        const next: Waiting[] = [];
        for (const w of pending) {
          const hit = w.keys.find((k) => existing.has(k));
          if (!hit) {
            next.push(w);
            continue;
          }
          // A retried attempt finding what an earlier attempt of this very claim wrote: it is new.
          if (nonceOf(existing.get(hit)!.toString()) === w.nonce) {
            w.settle({ duplicate: false });
            continue;
          }
          const original = decode(existing.get(hit)!.toString());
          w.settle({ duplicate: true, key: hit, ...(original ? { original } : {}) });
        }
        // Cannot happen (the failed comparison and the reads are one transaction), but a loop
        // that settles nothing must not spin.
        if (next.length === pending.length) throw new SwitchyardError('E_REGISTRY', 'the seen-set transaction failed without an existing key');
        pending = next;
      }
    } catch (err) {
      const error = toRegistryError(err, this.registry.endpoints, 'checking whether a Slack request already ran');
      for (const w of pending) w.settle(error);
    }
  }

  private currentLease(deadline: number): Promise<SharedLease> {
    const now = this.now();
    const current = this.lease;
    if (current) {
      return current.then((l) => {
        if (l.until > now) return l;
        if (this.lease === current) this.lease = undefined;
        return this.currentLease(deadline);
      });
    }
    const granted = withinDeadline(deadline - now, () => this.registry.client.leaseClient.leaseGrant({ TTL: this.ttlSec + this.shareSec, ID: 0 })).then(
      (res) => ({ id: res.ID, until: now + this.shareSec * 1000 }),
    );
    this.lease = granted;
    // A failed grant must not stick: the next claim asks again.
    granted.catch(() => {
      if (this.lease === granted) this.lease = undefined;
    });
    return granted;
  }
}

function nonceOf(raw: string): string | undefined {
  try {
    const v = (JSON.parse(raw) as { nonce?: unknown }).nonce;
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

function decode(raw: string): SeenRecord | undefined {
  try {
    const r = recordSchema.safeParse(JSON.parse(raw));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}
