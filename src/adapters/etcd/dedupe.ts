/**
 * The seen-set of Slack requests in etcd, so every replica — a second one, or this one
 * restarted — refuses a request another has executed. One key per identity of a request
 * (`<switchyard>/dedupe/event/<event_id>`, `…/trigger/<trigger_id>`, `…/sig/<sha256>`),
 * created in one create-if-absent transaction on a lease that outlives every way the same
 * request can come back.
 */
import { EtcdLeaseInvalidError } from 'etcd3';
import { z } from 'zod';
import type { ClaimResult, RequestDeduper, SeenRecord } from '../../core/dedupe.js';
import { SwitchyardError } from '../../core/errors.js';
import { toRegistryError } from './errors.js';
import { putOp, rangeOp, unchanged } from './ops.js';
import type { EtcdRegistry } from './registry.js';

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
   * Keys written within this long share one lease (granted with ttl + this), so a request
   * costs one transaction, not a lease grant as well. Default 60 s.
   */
  leaseShareSec?: number;
  /**
   * Budget of one claim. The claim sits before Slack's ack, which must arrive within 3 s;
   * past this the request is refused rather than run unchecked. Default 2000 ms.
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

export class EtcdDeduper implements RequestDeduper {
  private readonly ttlSec: number;
  private readonly shareSec: number;
  private readonly timeoutMs: number;
  private readonly now: () => number;
  private lease: Promise<SharedLease> | undefined;

  constructor(
    private readonly registry: EtcdRegistry,
    opts: EtcdDeduperOptions = {},
  ) {
    this.ttlSec = opts.ttlSec ?? SEEN_TTL_SEC;
    this.shareSec = opts.leaseShareSec ?? 60;
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.now = opts.now ?? Date.now;
  }

  async claim(keys: readonly string[], record: SeenRecord): Promise<ClaimResult> {
    if (keys.length === 0) return { duplicate: false };
    const deadline = this.now() + this.timeoutMs;
    const fullKeys = keys.map((k) => this.registry.layout.dedupeKey(k));
    return this.call('checking whether a Slack request already ran', deadline, async () => {
      // A lease revoked or expired under us (etcd restored from a snapshot, a clock jump):
      // take a fresh one and try once more.
      for (let attempt = 0; ; attempt++) {
        const lease = await this.currentLease(deadline);
        try {
          const res = await this.registry.client.kv.txn(
            {
              compare: fullKeys.map((k) => unchanged(k, undefined)),
              success: fullKeys.map((k) => putOp(k, JSON.stringify(record), lease.id)),
              failure: fullKeys.map((k) => rangeOp(k)),
            },
            { deadline },
          );
          if (res.succeeded) return { duplicate: false };
          const index = res.responses.findIndex((r) => (r.response_range?.kvs.length ?? 0) > 0);
          const kv = res.responses[index]?.response_range?.kvs[0];
          const original = kv ? decode(kv.value.toString()) : undefined;
          return { duplicate: true, key: keys[Math.max(index, 0)]!, ...(original ? { original } : {}) };
        } catch (err) {
          if (!(err instanceof EtcdLeaseInvalidError) || attempt > 0) throw err;
          this.lease = undefined;
        }
      }
    });
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
    const granted = this.registry.client.leaseClient
      .leaseGrant({ TTL: this.ttlSec + this.shareSec, ID: 0 }, { deadline })
      .then((res) => ({ id: res.ID, until: now + this.shareSec * 1000 }));
    this.lease = granted;
    // A failed grant must not stick: the next claim asks again.
    granted.catch(() => {
      if (this.lease === granted) this.lease = undefined;
    });
    return granted;
  }

  private async call<T>(action: string, deadline: number, fn: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    // The gRPC deadline ends a call, but not what runs before it (connecting, auth token
    // exchange): the timer bounds the whole claim.
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new SwitchyardError('E_TIMEOUT', `etcd (${this.registry.endpoints.join(', ')}) did not answer within ${this.timeoutMs} ms while ${action}`)),
        Math.max(0, deadline - this.now()),
      );
    });
    try {
      return await Promise.race([fn(), timeout]);
    } catch (err) {
      throw toRegistryError(err, this.registry.endpoints, action);
    } finally {
      clearTimeout(timer);
    }
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
