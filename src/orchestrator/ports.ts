/**
 * The narrow contracts the orchestrator needs beyond the Registry and the ContainerEngine.
 * Optional members of Services: scale works without a SessionCounter (it waits a grace
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

/**
 * Current sessions of one instance as a load balancer sees them (HAProxy's scur). Scale-down
 * waits for 0 before stopping a drained container. `undefined`: not known (no agent, the
 * server is not in any backend yet); the caller then waits a short grace instead.
 */
export interface SessionCounter {
  currentSessions(service: string, instance: string): Promise<number | undefined>;
}
