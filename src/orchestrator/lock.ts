import { hostname } from 'node:os';
import type { Etcd3, Lease, Watcher } from 'etcd3';
import { SwitchyardError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { toRegistryError } from '../adapters/etcd/errors.js';
import type { AcquireOptions, HeldLock, LockHolder, ServiceLocks } from './ports.js';

export interface EtcdServiceLocksOptions {
  /** `/switchyard/locks/<service>` (KeyLayout.lockKey). */
  keyOf(service: string): string;
  ttlMs: number;
  endpoints: readonly string[];
  log: Logger;
}

/** Re-check the key this often even without a watch event (a watch can miss while reconnecting). */
const RECHECK_MS = 1000;

/**
 * The per-service lock: one key on a lease that this process keeps alive. A holder that
 * crashes stops renewing, so etcd deletes the key when the TTL runs out and the next
 * waiter goes ahead; the value says who holds it, so a refusal can name them. Waiters
 * watch the key for its deletion from the revision they saw it at, so a release between
 * their check and their watch is not missed.
 */
export class EtcdServiceLocks implements ServiceLocks {
  constructor(
    private readonly client: Etcd3,
    private readonly opts: EtcdServiceLocksOptions,
  ) {}

  async acquire(service: string, holder: LockHolder, { waitMs, onWait }: AcquireOptions): Promise<HeldLock> {
    const key = this.opts.keyOf(service);
    const log = this.opts.log.child({ lock: key });
    // Kept alive by the registry's client, which revokes it on closing: a process that
    // shuts down mid-operation does not leave the lock behind for the TTL.
    const lease = this.client.lease(Math.max(1, Math.ceil(this.opts.ttlMs / 1000)), { autoKeepAlive: true });
    const lock = new LeaseLock(lease, log);
    const value = JSON.stringify({ ...holder, host: hostname(), pid: process.pid, at: new Date().toISOString() });
    const deadline = Date.now() + waitMs;
    let waitingFor: string | undefined;
    try {
      const leaseId = await this.call(`granting a lease for the lock on ${service}`, () => lease.grant());
      for (;;) {
        const res = await this.call(`taking the lock on ${service}`, () =>
          this.client.if(key, 'Create', '==', 0).then(this.client.put(key).value(value).lease(leaseId)).else(this.client.get(key)).commit(),
        );
        const kv = res.responses[0]?.response_range?.kvs[0];
        // Ours already when a put retried after a transient error had landed the first time.
        if (res.succeeded || kv?.lease === leaseId) {
          log.debug('service lock taken');
          return lock;
        }
        if (!kv) continue; // released in between: try again at once
        const current = parseHolder(kv.value.toString());
        const remaining = deadline - Date.now();
        if (remaining <= 0) {
          throw new SwitchyardError('E_CONFLICT', `${service} is locked by ${describeHolder(current)}; try again when it is done`, {
            details: [`the lock (${key}) expires by itself within ${Math.ceil(this.opts.ttlMs / 1000)}s if its holder has crashed`],
          });
        }
        if (waitingFor !== kv.create_revision) {
          waitingFor = kv.create_revision;
          onWait?.(current);
        }
        await this.waitForDelete(key, (BigInt(res.header.revision) + 1n).toString(), Math.min(remaining, RECHECK_MS));
      }
    } catch (err) {
      await lease.revoke().catch((e: unknown) => log.debug({ err: e }, 'could not revoke an unused lock lease'));
      throw err;
    }
  }

  private waitForDelete(key: string, fromRevision: string, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      let watcher: Watcher | undefined;
      const done = () => {
        clearTimeout(timer);
        watcher?.removeAllListeners();
        // Cancelling only tidies up the server side; a failure there changes nothing for us.
        watcher?.cancel().catch((err: unknown) => this.opts.log.debug({ err }, 'lock watch cancel failed'));
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      watcher = this.client.watch().key(key).startRevision(fromRevision).watcher();
      watcher.on('delete', done);
      // A broken watch just means we re-check when the timer fires.
      watcher.on('error', (err) => this.opts.log.debug({ err }, 'lock watch failed'));
      watcher.on('disconnected', (err) => this.opts.log.debug({ err }, 'lock watch disconnected'));
    });
  }

  private async call<T>(action: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toRegistryError(err, this.opts.endpoints, action);
    }
  }
}

class LeaseLock implements HeldLock {
  private lost = false;
  private released = false;

  constructor(
    private readonly lease: Lease,
    private readonly log: Logger,
  ) {
    lease.on('lost', (err) => {
      this.lost = true;
      log.warn({ err }, 'lost the lease of a service lock: another holder may take it');
    });
  }

  get held(): boolean {
    return !this.lost && !this.released && !this.lease.revoked();
  }

  async release(): Promise<void> {
    this.released = true;
    // Revoking deletes the key with it; if etcd is unreachable the TTL does the same.
    await this.lease.revoke().catch((err: unknown) => this.log.warn({ err }, 'could not release a service lock; it expires with its lease'));
  }
}

function parseHolder(value: string): LockHolder {
  try {
    const v = JSON.parse(value) as Partial<LockHolder>;
    if (typeof v.by === 'string' && typeof v.what === 'string') return v as LockHolder;
  } catch {
    // not ours (someone wrote it by hand): described as unknown below
  }
  return { by: 'unknown', what: `an unknown holder (${JSON.stringify(value.slice(0, 40))})` };
}

export function describeHolder(h: LockHolder): string {
  const where = h.host ? ` on ${h.host}${h.pid ? ` pid ${h.pid}` : ''}` : '';
  const since = h.at ? ` since ${h.at}` : '';
  return `${h.by} (${h.what}${since}${where})`;
}
