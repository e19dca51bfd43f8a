/**
 * The watcher's side of etcd: its lease and the keys bound to it. Ownership is the lease
 * itself — a key is this watcher's only while it sits on this watcher's lease (or on its
 * predecessor's, the lease the last run of the same host left behind) — so a watcher never
 * overwrites or deletes a key put there by `register`, `scale` or another host's watcher.
 */
import type { ICompare, IKeyValue, IRequestOp, Lease } from 'etcd3';
import { encodeCause } from '../adapters/etcd/attribution.js';
import { decodeAddress, decodeState, encodeState, isProblem, leaseOf } from '../adapters/etcd/codec.js';
import { registryCall, toRegistryError } from '../adapters/etcd/errors.js';
import { deleteOp, putOp, rangeOp, unchanged } from '../adapters/etcd/ops.js';
import type { EtcdRegistry } from '../adapters/etcd/registry.js';
import type { Logger } from '../core/log.js';
import { DEFAULT_WEIGHT, type InstanceState, type StateRecord } from '../core/registry.js';
import { decodeWatcherRecord, watcherActor, type WatcherRecord } from '../core/watcher-record.js';

export interface OwnedInstance {
  service: string;
  instance: string;
  address: string;
  state?: StateRecord;
  lease: string;
}

export type PutOutcome = 'written' | 'unchanged' | 'foreign';

export interface PutRequest {
  service: string;
  instance: string;
  address: string;
  state: InstanceState;
  weight?: number;
  reason: string;
}

export class WatcherKeys {
  private lease: Lease | undefined;
  private leaseId: string | undefined;
  /** Leases of earlier runs on this host whose keys this run takes over. */
  private readonly predecessors = new Set<string>();
  readonly actor: string;

  constructor(
    private readonly registry: EtcdRegistry,
    readonly host: string,
    private readonly log: Logger,
  ) {
    this.actor = watcherActor(host);
  }

  get currentLease(): string | undefined {
    return this.leaseId;
  }

  /**
   * Grant a kept-alive lease. A lost lease (etcd unreachable past the TTL) took every key
   * with it: `onLost` is told so the caller can open a new one and register everything again.
   */
  async open(ttlSeconds: number, onLost: (why: string) => void): Promise<string> {
    const previous = await this.readRecord();
    const lease = this.registry.client.lease(ttlSeconds);
    lease.on('lost', (err) => {
      if (this.lease !== lease) return;
      this.lease = undefined;
      this.leaseId = undefined;
      onLost(err.message);
    });
    const id = await this.call('granting the watcher lease', () => lease.grant());
    if (this.leaseId !== undefined) this.predecessors.add(this.leaseId);
    if (previous && previous.lease !== id) this.predecessors.add(previous.lease);
    this.lease = lease;
    this.leaseId = id;
    return id;
  }

  private owns(lease: string | undefined): boolean {
    return lease !== undefined && (lease === this.leaseId || this.predecessors.has(lease));
  }

  /** Every instance on this watcher's lease or a predecessor's. */
  async owned(): Promise<OwnedInstance[]> {
    const layout = this.registry.layout;
    const leases = [this.leaseId, ...this.predecessors].filter((l): l is string => l !== undefined);
    const keys: string[] = [];
    for (const ID of leases) {
      const res = await this.call('listing the watcher keys', () => this.registry.client.leaseClient.leaseTimeToLive({ ID, keys: true }));
      // TTL -1: expired or revoked; nothing of it is left to take over.
      if (Number(res.TTL) < 0 && ID !== this.leaseId) this.predecessors.delete(ID);
      for (const k of (res as unknown as { keys?: Buffer[] }).keys ?? []) keys.push(k.toString());
    }
    const out: OwnedInstance[] = [];
    for (const key of keys) {
      const ref = layout.parseServiceKey(key);
      if (typeof ref === 'string') continue;
      const [svc, st] = await this.read([key, layout.stateKey(ref.service, ref.instance)]);
      if (!svc || !this.owns(leaseOf(svc))) continue;
      const address = decodeAddress(svc.value.toString());
      const state = st ? decodeState(st.value.toString()) : undefined;
      out.push({
        ...ref,
        address: isProblem(address) ? '' : address,
        ...(state && !isProblem(state) ? { state } : {}),
        lease: leaseOf(svc)!,
      });
    }
    return out;
  }

  /** Register or update one instance on this watcher's lease. */
  async put(req: PutRequest): Promise<PutOutcome> {
    const { service, instance, address, reason } = req;
    const lease = this.leaseId;
    if (lease === undefined) throw new Error('the watcher has no lease');
    const layout = this.registry.layout;
    const svcKey = layout.serviceKey(service, instance);
    const stKey = layout.stateKey(service, instance);
    for (let attempt = 1; attempt <= 5; attempt++) {
      const [svcKv, stKv] = await this.read([svcKey, stKey]);
      if (svcKv && !this.owns(leaseOf(svcKv))) return 'foreign';
      const prevDecoded = stKv ? decodeState(stKv.value.toString()) : undefined;
      const prev = prevDecoded && !isProblem(prevDecoded) ? prevDecoded : undefined;
      const state = nextState(prev, req.state, this.actor);
      const weight = req.weight ?? prev?.weight ?? DEFAULT_WEIGHT;
      const same =
        svcKv !== undefined &&
        leaseOf(svcKv) === lease &&
        svcKv.value.toString() === address &&
        stKv !== undefined &&
        leaseOf(stKv) === lease &&
        prev?.state === state &&
        prev.weight === weight;
      if (same) return 'unchanged';
      const now = new Date();
      const record: StateRecord = prev?.state === state && prev.weight === weight ? prev : { state, weight, by: this.actor, at: now.toISOString() };
      const ok = await this.txn(
        'registering',
        [unchanged(svcKey, svcKv), unchanged(stKey, stKv)],
        [this.causeOp(reason, now, lease), putOp(svcKey, address, lease), putOp(stKey, encodeState(record), lease)],
      );
      if (ok) return 'written';
    }
    throw toRegistryError(new Error(`${service}/${instance} kept changing`), this.registry.endpoints, 'registering');
  }

  /** Deregister one instance if it is this watcher's; false when it was not there or not ours. */
  async remove(service: string, instance: string, reason: string): Promise<boolean> {
    const layout = this.registry.layout;
    const svcKey = layout.serviceKey(service, instance);
    for (let attempt = 1; attempt <= 5; attempt++) {
      const [svcKv] = await this.read([svcKey]);
      if (!svcKv || !this.owns(leaseOf(svcKv))) return false;
      // The cause goes on no lease: it must outlive this delete for the feed to read it.
      const ok = await this.txn(
        'deregistering',
        [unchanged(svcKey, svcKv)],
        [this.causeOp(reason, new Date(), undefined), deleteOp(svcKey), deleteOp(layout.stateKey(service, instance))],
      );
      if (ok) return true;
    }
    return false;
  }

  async readRecord(): Promise<WatcherRecord | undefined> {
    const [kv] = await this.read([this.registry.layout.watcherKey(this.host)]);
    return kv ? decodeWatcherRecord(kv.value.toString()) : undefined;
  }

  async writeRecord(rec: WatcherRecord): Promise<void> {
    await this.txn('writing the watcher record', [], [putOp(this.registry.layout.watcherKey(this.host), JSON.stringify(rec), rec.lease)]);
  }

  /** Predecessor leases are dropped once their keys were taken over or removed. */
  async forgetPredecessors(): Promise<void> {
    for (const ID of [...this.predecessors]) {
      this.predecessors.delete(ID);
      await this.registry.client.leaseClient.leaseRevoke({ ID }).catch((err: unknown) => this.log.debug({ err, lease: ID }, 'predecessor lease already gone'));
    }
  }

  /** Revoke the lease: every registration of this watcher goes in one etcd revision. */
  async revoke(): Promise<void> {
    const lease = this.lease;
    this.lease = undefined;
    this.leaseId = undefined;
    await lease?.revoke();
  }

  private causeOp(reason: string, now: Date, lease: string | undefined): IRequestOp {
    return putOp(this.registry.layout.causeKey(), encodeCause({ by: this.actor, reason }, now), lease);
  }

  private async read(keys: string[]): Promise<(IKeyValue | undefined)[]> {
    const res = await this.call('reading watcher keys', () => this.registry.client.kv.txn({ compare: [], success: keys.map(rangeOp), failure: [] }));
    return res.responses.map((r) => r.response_range?.kvs[0]);
  }

  private async txn(action: string, compare: ICompare[], success: IRequestOp[]): Promise<boolean> {
    const res = await this.call(action, () => this.registry.client.kv.txn({ compare, success, failure: [] }));
    return res.succeeded;
  }

  private call<T>(action: string, fn: () => Promise<T>): Promise<T> {
    return this.registry.operation(() => registryCall(this.registry.endpoints, action, fn));
  }
}

/**
 * The watcher puts an instance in maint (paused, unhealthy) and takes it out again, but a
 * drain or maint someone else asked for outlives its container's restarts.
 */
export function nextState(prev: StateRecord | undefined, wanted: InstanceState, actor: string): InstanceState {
  if (wanted === 'maint') return 'maint';
  if (!prev) return wanted;
  if (prev.state === 'maint' && prev.by === actor) return wanted;
  return prev.state;
}
