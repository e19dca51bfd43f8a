/**
 * Where an agent publishes its last apply result: `<switchyard>/agents/<agent-id>`, on a
 * lease kept alive while the agent runs, so a dead agent's key disappears by itself.
 *
 * A narrow port of its own rather than a wider Registry: only agents write these keys,
 * and the lease lifecycle has nothing to do with instance registration.
 */
import type { Etcd3, Lease } from 'etcd3';
import { toRegistryError } from '../adapters/etcd/errors.js';
import type { Logger } from '../core/log.js';
import type { ApplyResult } from '../core/apply-result.js';

export interface AgentStatusStore {
  /** Publish (replace) the agent's last result. Rejects with a coded error if etcd is unreachable. */
  publish(result: ApplyResult): Promise<void>;
  /** Remove the key (revoke the lease). */
  close(): Promise<void>;
}

export interface EtcdAgentStatusOptions {
  client: Etcd3;
  /** Full key, e.g. KeyLayout.agentKey(agentId). */
  key: string;
  /** Lease TTL; the key outlives a crashed agent by at most this. Default 10 s. */
  ttlSeconds?: number;
  endpoints?: readonly string[];
  log: Logger;
}

export class EtcdAgentStatusStore implements AgentStatusStore {
  private lease: Lease | undefined;
  private last: string | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryMs = 250;
  private closed = false;
  /** Writes run one at a time, so an older result can never land after a newer one. */
  private queue: Promise<void> = Promise.resolve();
  private readonly log: Logger;

  constructor(private readonly opts: EtcdAgentStatusOptions) {
    this.log = opts.log.child({ component: 'agent-status', key: opts.key });
  }

  async publish(result: ApplyResult): Promise<void> {
    if (this.closed) return;
    this.last = JSON.stringify(result);
    const write = this.queue.then(() => this.write());
    // The queue itself must not stay rejected; the caller gets this write's outcome.
    this.queue = write.catch(() => undefined);
    await write;
  }

  private currentLease(): Lease {
    if (this.lease) return this.lease;
    const lease = this.opts.client.lease(this.opts.ttlSeconds ?? 10);
    lease.on('lost', (err) => {
      if (this.lease !== lease) return;
      // etcd was out of reach for longer than the TTL (or restarted without our lease):
      // the key is gone; put it back on a new lease as soon as etcd answers.
      this.lease = undefined;
      this.log.warn({ err: err.message }, 'agent status lease lost; re-publishing on a new lease');
      this.scheduleRetry();
    });
    this.lease = lease;
    return lease;
  }

  private async write(): Promise<void> {
    const value = this.last;
    if (value === undefined || this.closed) return;
    try {
      await this.currentLease().put(this.opts.key).value(value).exec();
      this.retryMs = 250;
    } catch (err) {
      // The lease may be the problem (expired, revoked while etcd was away): start over
      // with a new one next time; an abandoned lease expires with its TTL.
      this.lease?.release();
      this.lease = undefined;
      this.scheduleRetry();
      throw toRegistryError(err, this.opts.endpoints ?? [], `publishing ${this.opts.key}`);
    }
  }

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer) return;
    const delay = this.retryMs;
    this.retryMs = Math.min(5000, this.retryMs * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      const write = this.queue.then(() => this.write());
      this.queue = write.catch((err: unknown) => this.log.debug({ err }, 'agent status still not published'));
    }, delay);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    await this.queue; // a write in flight lands before the lease goes, not after
    const lease = this.lease;
    this.lease = undefined;
    if (!lease) return;
    try {
      await lease.revoke();
    } catch (err) {
      // etcd unreachable: the key expires with the lease's TTL instead.
      this.log.debug({ err }, 'could not revoke the agent status lease');
      lease.release();
    }
  }
}

/** For tests and for `switchyard render`: results kept in memory. */
export class MemoryAgentStatusStore implements AgentStatusStore {
  readonly published: ApplyResult[] = [];
  closed = false;
  async publish(result: ApplyResult): Promise<void> {
    this.published.push(result);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}
