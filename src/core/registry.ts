/**
 * The registry port: what core and plugins need from etcd. The etcd adapter implements it
 * against the SPEC key layout; unit tests may use a small in-memory fake.
 */
/** The one list of instance states: ready takes traffic, drain finishes its sessions, maint takes none. */
export const INSTANCE_STATES = ['ready', 'drain', 'maint'] as const;
export type InstanceState = (typeof INSTANCE_STATES)[number];

/** HAProxy server weights: 0 takes no new traffic, 256 is HAProxy's maximum. */
export const MIN_WEIGHT = 0;
export const MAX_WEIGHT = 256;
/** An instance without a state record, or registered without --weight. */
export const DEFAULT_WEIGHT = 100;

export const isWeight = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= MIN_WEIGHT && (n as number) <= MAX_WEIGHT;

export interface StateRecord {
  state: InstanceState;
  weight: number;
  by: string;
  at: string;
}

export interface Instance {
  service: string;
  instance: string;
  /** host:port exactly as stored under /services/<service>/<instance>. */
  address: string;
  /** Missing when no state key exists (e.g. registered by a confd-era script): treat as ready. */
  state?: StateRecord;
  /** etcd lease ID (decimal string) if the key is bound to a lease. */
  lease?: string;
  modRevision: string;
}

/** A key under a registry prefix whose name or value does not validate. */
export interface RegistryProblem {
  key: string;
  problem: string;
}

export interface Listing {
  instances: Instance[];
  problems: RegistryProblem[];
  revision: string;
}

export interface RegisterOptions {
  ttlMs?: number;
  weight?: number;
  by: string;
}

export interface DesiredRecord {
  replicas: number;
  by: string;
  at: string;
}

/** `prevLease`: the lease the key was bound to before this change (a lease expiry deletes such keys). */
export type RegistryEvent =
  | { type: 'put'; key: string; value: string; revision: string; lease?: string; prevValue?: string; prevLease?: string }
  | { type: 'delete'; key: string; revision: string; prevValue?: string; prevLease?: string };

export interface WatchHandlers {
  /** Changes in revision order. */
  onEvents(events: RegistryEvent[], revision: string): void;
  /**
   * A full snapshot: at start, and again when the history needed to resume was compacted
   * away, so the consumer must rebuild its view rather than apply deltas.
   */
  onResync(snapshot: { key: string; value: string }[], revision: string, reason: 'initial' | 'compacted'): void;
  onError?(err: Error): void;
}

export interface WatchHandle {
  close(): Promise<void>;
}

export interface EtcdHealth {
  ok: boolean;
  endpoints: { endpoint: string; ok: boolean; version?: string; error?: string }[];
}

export interface Registry {
  register(service: string, instance: string, address: string, opts: RegisterOptions): Promise<{ created: boolean }>;
  /**
   * Returns false if there was nothing to remove. With `address`, only a registration still at
   * that address is removed: a caller acting on what it read cannot undo a newer registration.
   */
  deregister(service: string, instance: string, opts?: { address?: string }): Promise<boolean>;
  list(service?: string): Promise<Listing>;
  get(service: string, instance: string): Promise<Instance | undefined>;
  setState(service: string, instance: string, state: InstanceState, by: string): Promise<void>;
  /** Rewrite only the weight in the state record, keeping the registration's lease. E_NOT_FOUND when not registered. */
  setWeight(service: string, instance: string, weight: number, by: string): Promise<void>;
  getDesired(service: string): Promise<DesiredRecord | undefined>;
  setDesired(service: string, replicas: number, by: string): Promise<void>;
  /** Watch every key under the switchyard and services prefixes (or the given one). */
  watch(prefix: string, handlers: WatchHandlers, fromRevision?: string): Promise<WatchHandle>;
  health(): Promise<EtcdHealth>;
  readonly prefixes: { services: string; switchyard: string };
  close(): Promise<void>;
}
