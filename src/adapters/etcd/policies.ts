/**
 * Fault-handling policies for etcd3, replacing its defaults. Measured with etcd3 1.1.2
 * against a restarted etcd: the default per-host circuit breaker opens after the three
 * retries of ONE failed call and then refuses every call (and every watch reconnect) for
 * 5 s after etcd is back, and the default watch backoff grows towards 30 s. For a bot
 * that must report "etcd is down" honestly and resume quickly when it is up, a call should
 * simply go to etcd: a dead host answers "connection refused" at once, a hung one runs
 * into the deadline of its attempt (see deadline.ts).
 *
 * The objects implement cockatiel's interfaces structurally: cockatiel is etcd3's
 * dependency, not ours, so it is not imported.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { GRPCDeadlineExceededError, isRecoverableError, type IOptions } from 'etcd3';
import { currentBudget, EtcdDeadlineError, newBudget, runWithin, type CallBudget } from './deadline.js';

type FaultHandling = NonNullable<IOptions['faultHandling']>;
export type EtcdPolicy = FaultHandling['global'] & object;
export type EtcdBackoff = FaultHandling['watchBackoff'] & object;

const noEvent = () => ({ dispose: () => undefined });

function policy(execute: (fn: (ctx: { signal: AbortSignal }) => unknown, signal?: AbortSignal) => Promise<unknown>): EtcdPolicy {
  // `_altReturn` is a type-only member of cockatiel's IPolicy; nothing reads it at runtime.
  return { execute, onSuccess: noEvent, onFailure: noEvent } as unknown as EtcdPolicy;
}

/**
 * Transient: etcd or the connection may answer differently in a moment — leader changed,
 * no leader, a member stopping, unreachable, too many requests (etcd3's "recoverable").
 */
export function isTransient(err: unknown): boolean {
  return typeof err === 'object' && err !== null && isRecoverableError(err as Error);
}

export interface BudgetPolicyOptions {
  /** etcd.commandTimeout: the deadline of a call made outside any operation's scope. */
  timeoutMs: number;
  /** How many endpoints the client has (each gets its turn before any is retried). */
  endpoints: number;
  /** Pause between rounds over all endpoints. Default 50 ms doubling to 500 ms. */
  pause?: { minMs: number; maxMs: number };
  /** Give up after this many attempts even with time left. Default: no limit. */
  attempts?: number;
}

/**
 * The global policy: every unary call runs within one budget (deadline.ts) and transient
 * failures are tried again inside it, on the next endpoint at once (etcd3 walks its shuffled
 * host list on every attempt) and after a short pause once every endpoint has had its turn.
 * When the budget is spent the call fails with EtcdDeadlineError naming what was tried.
 *
 * Retrying a write that failed with a transient error is safe here because every write is
 * a transaction whose effect does not depend on being applied once: compare-and-swap
 * (a replay finds the compare failed and re-reads), or a put/delete of the same value.
 */
export function withinBudget(o: BudgetPolicyOptions): EtcdPolicy {
  const pause = o.pause ?? { minMs: 50, maxMs: 500 };
  return policy(async (fn, signal) => {
    const ctx = { signal: signal ?? new AbortController().signal };
    const budget: CallBudget = { ...newBudget(o.timeoutMs), attempts: 0, endpoints: o.endpoints };
    return runWithin(budget, async () => {
      let last: unknown;
      for (let round = 0; ; ) {
        budget.attempts++;
        try {
          return await fn(ctx);
        } catch (err) {
          if (!isTransient(err) || budget.attempts >= (o.attempts ?? Number.POSITIVE_INFINITY)) throw err;
          // A deadline that ran out well before ours was the caller's own (a call option): final.
          if (err instanceof GRPCDeadlineExceededError && Date.now() < (budget.attemptEnds ?? 0) - 20) throw err;
          // "Deadline exceeded" says less than the failure before it (no leader, refused).
          if (last === undefined || !(err instanceof GRPCDeadlineExceededError)) last = err;
          const left = budget.deadline - Date.now();
          if (left <= 0) throw new EtcdDeadlineError(budget.timeoutMs, budget.tried, last);
          if (budget.attempts % o.endpoints !== 0) continue;
          await sleep(Math.min(left, pause.maxMs, pause.minMs * 2 ** Math.min(round++, 16)));
          if (Date.now() >= budget.deadline) throw new EtcdDeadlineError(budget.timeoutMs, budget.tried, last);
        }
      }
    });
  });
}

/** Per-host policy: run the call as is, noting the endpoint in the operation's budget (for messages). */
export function notingHost(host: string): EtcdPolicy {
  return policy(async (fn, signal) => {
    currentBudget()?.tried.push(host);
    return fn({ signal: signal ?? new AbortController().signal });
  });
}

/** Exponential backoff from `minMs`, doubling up to `maxMs`. */
export function cappedBackoff(minMs: number, maxMs: number): EtcdBackoff {
  const step = (duration: number): EtcdBackoff => ({ duration, next: () => step(Math.min(maxMs, duration * 2)) }) as EtcdBackoff;
  // A factory's next() yields the first delay; the factory's own duration is never used.
  return { duration: minMs, next: () => step(minMs) } as EtcdBackoff;
}
