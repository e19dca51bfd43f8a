import type { ServerState } from '../core/facades.js';

/**
 * The narrow contracts the orchestrator needs beyond the Registry and the ContainerEngine.
 * Optional members of the deps: scale works without an ObservedHaproxy (it waits a grace
 * instead), and a test can hand in any ServiceLocks.
 */

/** Who holds a service's lock: shown to whoever has to wait for it or is refused. */
export interface LockHolder {
  /** User or component ID. */
  by: string;
  /** What it is doing, e.g. "scale web 3". */
  what: string;
  requestId?: string;
  host?: string;
  pid?: number;
  /** ISO time it took the lock. */
  at?: string;
}

export interface HeldLock {
  /** False once the lock's lease was lost (etcd unreachable past the TTL): another may hold it now. */
  readonly held: boolean;
  release(): Promise<void>;
}

export interface AcquireOptions {
  /** Wait at most this long for a current holder (0: refuse at once). */
  waitMs: number;
  /** Called once per holder we find ourselves waiting for. */
  onWait?(holder: LockHolder): void;
}

export interface ServiceLocks {
  /** Take the per-service lock; E_CONFLICT naming the holder if it is not free within waitMs. */
  acquire(service: string, holder: LockHolder, opts: AcquireOptions): Promise<HeldLock>;
}

/** One instance's server as the local HAProxy shows it; undefined when HAProxy does not have it. */
export type ServerLookup = (service: string, instance: string) => Promise<ServerState | undefined>;

/**
 * The local HAProxy, where a drain can watch sessions end. Without one, scale-down waits a
 * short grace instead and `drain` says it cannot observe them.
 */
export interface ObservedHaproxy {
  /** Named in messages ("waiting for agent lb-1 to apply the drain"). */
  agentId: string;
  lookup: ServerLookup;
}
