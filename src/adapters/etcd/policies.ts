/**
 * Fault-handling policies for etcd3, replacing its defaults. Measured with etcd3 1.1.2
 * against a restarted etcd: the default per-host circuit breaker opens after the three
 * retries of ONE failed call and then refuses every call (and every watch reconnect) for
 * 5 s after etcd is back, and the default watch backoff grows towards 30 s. For a bot
 * that must report "etcd is down" honestly and resume quickly when it is up, a call should
 * simply go to etcd: a dead host answers "connection refused" at once, a hung one runs
 * into the per-call deadline (see client.ts).
 *
 * The objects implement cockatiel's interfaces structurally: cockatiel is etcd3's
 * dependency, not ours, so it is not imported.
 */
import { isRecoverableError, type IOptions } from 'etcd3';

type FaultHandling = NonNullable<IOptions['faultHandling']>;
export type EtcdPolicy = FaultHandling['global'] & object;
export type EtcdBackoff = FaultHandling['watchBackoff'] & object;

const noEvent = () => ({ dispose: () => undefined });

function policy(execute: (fn: (ctx: { signal: AbortSignal }) => unknown, signal?: AbortSignal) => Promise<unknown>): EtcdPolicy {
  // `_altReturn` is a type-only member of cockatiel's IPolicy; nothing reads it at runtime.
  return { execute, onSuccess: noEvent, onFailure: noEvent } as unknown as EtcdPolicy;
}

function isRecoverable(err: unknown): boolean {
  return typeof err === 'object' && err !== null && isRecoverableError(err as Error);
}

/** Run the call once, as is. */
export function passThrough(): EtcdPolicy {
  return policy(async (fn, signal) => fn({ signal: signal ?? new AbortController().signal }));
}

/**
 * Retry connection-level failures up to `attempts` times in all. etcd3 picks the next host
 * of its shuffled list for every attempt, so with attempts = number of endpoints each
 * endpoint is tried once; with one endpoint a failure is reported at once.
 */
export function retryRecoverable(attempts: number): EtcdPolicy {
  return policy(async (fn, signal) => {
    const ctx = { signal: signal ?? new AbortController().signal };
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(ctx);
      } catch (err) {
        if (attempt >= attempts || !isRecoverable(err)) throw err;
      }
    }
  });
}

/** Exponential backoff from `minMs`, doubling up to `maxMs`. */
export function cappedBackoff(minMs: number, maxMs: number): EtcdBackoff {
  const step = (duration: number): EtcdBackoff =>
    ({ duration, next: () => step(Math.min(maxMs, duration * 2)) }) as EtcdBackoff;
  // A factory's next() yields the first delay; the factory's own duration is never used.
  return { duration: minMs, next: () => step(minMs) } as EtcdBackoff;
}
