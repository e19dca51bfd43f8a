/**
 * Exactly once per Slack request. Slack redelivers events it did not see acknowledged
 * (X-Slack-Retry-Num, Socket Mode `retry_attempt`), and anyone holding a copy of a signed
 * request can send it again while its timestamp is fresh. So before a request reaches a
 * handler, every identity it carries — `event_id`, `trigger_id` (unique per slash command
 * and per button press), and the request signature — is claimed in a shared seen-set
 * (etcd in `serve`); a request with any identity already claimed is acknowledged, so Slack
 * stops retrying, and not executed.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { AnyMiddlewareArgs, Middleware } from '@slack/bolt';
import { Counter, type Registry } from 'prom-client';
import type { ClaimResult, RequestDeduper, SeenRecord } from '../../core/dedupe.js';
import type { Logger } from '../../core/log.js';

export type { ClaimResult, RequestDeduper, SeenRecord };

/** What the seen-set knows a request by. */
export interface RequestIdentity {
  /** The id its handler logs under: event_id for events, trigger_id for commands and presses. */
  requestId: string;
  kind: 'event' | 'command' | 'interaction' | 'other';
  /** `event/…`, `trigger/…`, `sig/<sha256 hex>`; empty when the request carries none. */
  keys: string[];
}

const SAFE_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/** Ids become key segments: anything outside Slack's usual alphabet is hashed, never used raw. */
function keyPart(id: string): string {
  return SAFE_ID.test(id) ? id : `h-${sha256(id)}`;
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

export function requestIdentity(body: unknown, signature?: string): RequestIdentity {
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const eventId = nonEmpty(b.event_id);
  const triggerId = nonEmpty(b.trigger_id);
  const keys: string[] = [];
  if (eventId) keys.push(`event/${keyPart(eventId)}`);
  if (triggerId) keys.push(`trigger/${keyPart(triggerId)}`);
  // A Slack retry is signed afresh, so the signature only catches byte-for-byte replays;
  // those are exactly what the ids cannot catch for a payload that carries none.
  if (signature) keys.push(`sig/${sha256(signature)}`);
  const kind = eventId ? 'event' : typeof b.command === 'string' ? 'command' : typeof b.type === 'string' ? 'interaction' : 'other';
  return { requestId: eventId ?? triggerId ?? randomUUID(), kind, keys };
}

function nonEmpty(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

export interface OnceOptions {
  deduper: RequestDeduper;
  log: Logger;
  metricsRegistry: Registry;
  /** Context key under which the receiver put the request's signature (HTTP only). */
  signatureKey: string;
  /** Told when a request starts waiting for its claim and when the claim is answered. */
  backlog?: { enter(): void; leave(): void };
  /**
   * A command or press whose claim has not been answered by then is acknowledged at once
   * (Slack wants its ack within 3 s), and the claim goes on within the seen-set's own budget:
   * an etcd leader election (1–2 s) then delays the command instead of refusing it. Default 1500 ms.
   */
  ackAfterMs?: number;
  now?: () => number;
}

/** Told to the user when the seen-set cannot be asked: the command did not run. */
export const UNCHECKED_TEXT =
  ':x: switchyard could not check that this request is new (etcd did not answer), so it did not run it; nothing was changed. Try again in a moment.';

/**
 * Global Bolt middleware, registered before every listener. Events are already acked by
 * Bolt at this point; commands and interactions are acked here when dropped.
 */
export function onceMiddleware(o: OnceOptions): Middleware<AnyMiddlewareArgs> {
  const log = o.log.child({ component: 'slack-dedupe' });
  const now = o.now ?? Date.now;
  const duplicates = counter(o.metricsRegistry);
  return async (args) => {
    const { body, context, next } = args;
    const ack = 'ack' in args && typeof args.ack === 'function' ? (args.ack as (msg?: unknown) => Promise<void>) : undefined;
    const respond = 'respond' in args && typeof args.respond === 'function' ? args.respond : undefined;
    const signature = typeof context[o.signatureKey] === 'string' ? (context[o.signatureKey] as string) : undefined;
    const id = requestIdentity(body, signature);
    if (id.keys.length === 0) {
      log.warn({ requestId: id.requestId }, 'Slack request carries no event_id, trigger_id or signature; it cannot be de-duplicated');
      await next();
      return;
    }
    let claim: ClaimResult;
    o.backlog?.enter();
    // Set once the ack went out early; the listener's own ack is then a second one (ackOrCarryOn knows).
    let earlyAck: Promise<void> | undefined;
    const ackTimer =
      ack && id.kind !== 'event'
        ? setTimeout(() => {
            log.info({ requestId: id.requestId, kind: id.kind }, 'etcd is slow to answer the duplicate check: acknowledged first, checking on');
            earlyAck = ack().catch((err: unknown) => log.warn({ err, requestId: id.requestId }, 'could not acknowledge a Slack request early'));
          }, o.ackAfterMs ?? 1500)
        : undefined;
    try {
      claim = await o.deduper.claim(id.keys, { requestId: id.requestId, at: new Date(now()).toISOString() });
    } catch (err) {
      // Unsure whether it ran already: not running it is the safe side of "at most once".
      log.error({ err, requestId: id.requestId, kind: id.kind }, 'could not check whether a Slack request already ran; it was not executed');
      clearTimeout(ackTimer);
      if (earlyAck) await earlyAck;
      if (id.kind === 'command' && ack && !earlyAck) await ack({ response_type: 'ephemeral', text: UNCHECKED_TEXT });
      else {
        if (!earlyAck) await ack?.();
        await respond?.({ response_type: 'ephemeral', replace_original: false, text: UNCHECKED_TEXT }).catch((e: unknown) =>
          log.warn({ err: e }, 'could not say so'),
        );
      }
      return;
    } finally {
      clearTimeout(ackTimer);
      o.backlog?.leave();
    }
    if (earlyAck) await earlyAck;
    if (claim.duplicate) {
      duplicates.inc({ kind: id.kind });
      log.info(
        {
          requestId: claim.original?.requestId ?? id.requestId,
          duplicateOf: claim.original?.requestId,
          firstSeenAt: claim.original?.at,
          matched: claim.key.split('/', 1)[0],
          kind: id.kind,
          retryNum: context.retryNum,
          retryReason: context.retryReason,
        },
        'duplicate Slack request acknowledged, not executed',
      );
      if (!earlyAck) await ack?.();
      return;
    }
    await next();
  };
}

function counter(registry: Registry): Counter<'kind'> {
  const name = 'switchyard_slack_duplicate_requests_total';
  const existing = registry.getSingleMetric(name);
  return existing instanceof Counter
    ? (existing as Counter<'kind'>)
    : new Counter({
        name,
        help: 'Slack requests acknowledged but not executed: retries and replays, by kind',
        labelNames: ['kind'] as const,
        registers: [registry],
      });
}

export interface MemoryDeduperOptions {
  /** Default 11 minutes (see SEEN_TTL_SEC in the etcd adapter). */
  ttlMs?: number;
  /** Bound on memory under a flood; the oldest keys go first. */
  maxEntries?: number;
  now?: () => number;
}

/** One process's seen-set: right for one replica that never restarts, and for tests. */
export class MemoryDeduper implements RequestDeduper {
  private readonly entries = new Map<string, { record: SeenRecord; expiry: number }>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(opts: MemoryDeduperOptions = {}) {
    this.ttlMs = opts.ttlMs ?? 11 * 60_000;
    this.maxEntries = opts.maxEntries ?? 30_000;
    this.now = opts.now ?? Date.now;
  }

  async claim(keys: readonly string[], record: SeenRecord): Promise<ClaimResult> {
    const now = this.now();
    this.prune(now);
    for (const key of keys) {
      const hit = this.entries.get(key);
      if (hit) return { duplicate: true, key, original: hit.record };
    }
    for (const key of keys) {
      // Map order stays expiry order (the TTL is constant), so prune can stop early.
      this.entries.set(key, { record, expiry: now + this.ttlMs });
      if (this.entries.size > this.maxEntries) {
        const oldest = this.entries.keys().next().value;
        if (oldest !== undefined) this.entries.delete(oldest);
      }
    }
    return { duplicate: false };
  }

  get size(): number {
    return this.entries.size;
  }

  private prune(now: number): void {
    for (const [key, { expiry }] of this.entries) {
      if (expiry > now) break;
      this.entries.delete(key);
    }
  }
}
