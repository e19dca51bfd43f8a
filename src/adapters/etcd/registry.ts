import { GRPCOutOfRangeError, type Etcd3, type IKeyValue, type IRequestOp, type ICompare } from 'etcd3';
import type { Config } from '../../config/schema.js';
import { SwitchyardError } from '../../core/errors.js';
import { createLogger, type Logger } from '../../core/log.js';
import { NAME_RE, parseHostPort } from '../../core/names.js';
import {
  type DesiredRecord,
  type EtcdHealth,
  type Instance,
  type InstanceState,
  INSTANCE_STATES,
  isWeight,
  type Listing,
  type RegisterOptions,
  type Registry,
  type StateRecord,
  type WatchHandle,
  type WatchHandlers,
} from '../../core/registry.js';
import { causeOp } from './attribution.js';
import { createEtcdClient, resolveEtcdSettings, type EtcdClientOptions, type EtcdConfig, type EtcdSettings, type LeaseKeepingEtcd3 } from './client.js';
import { withinDeadline } from './deadline.js';
import {
  buildListing,
  decodeAddress,
  decodeDesired,
  decodeState,
  DEFAULT_WEIGHT,
  encodeDesired,
  encodeState,
  isProblem,
  leaseOf,
  MAX_WEIGHT,
} from './codec.js';
import { describeEtcdError, toRegistryError } from './errors.js';
import { endpointHealth } from './health.js';
import { KeyLayout } from './keys.js';
import { deleteOp, holds, putOp, rangeOp, unchanged } from './ops.js';
import { directoryScope, ResumableWatch, type WatchScope } from './watch.js';

export interface EtcdRegistryOptions {
  log?: Logger;
  /** Per-endpoint budget of health(). Default 1000 ms. */
  healthTimeoutMs?: number;
  /** Reconnect backoff of watches. Default 100 ms doubling to 2 s. */
  watchBackoff?: { minMs: number; maxMs: number };
  /** Clock for the `at` of state and desired records. */
  now?: () => Date;
}

/** Read-modify-write attempts before a key that keeps changing is reported as a conflict. */
const CAS_ATTEMPTS = 5;
const MAX_REPLICAS = 10_000;

function badArgs(message: string): never {
  throw new SwitchyardError('E_BAD_ARGS', message);
}

function checkName(kind: 'service' | 'instance', name: string): void {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    badArgs(`${kind} name ${JSON.stringify(name)} is invalid: it must match ${NAME_RE.source} (lower-case letters, digits, _ . -; at most 63 chars)`);
  }
}

function checkBy(by: string): void {
  // Slack user IDs, "shell:…", agent IDs: any short printable token.
  if (typeof by !== 'string' || !/^[\x21-\x7e]{1,64}$/.test(by)) badArgs(`"by" must be a user or agent ID, got ${JSON.stringify(by)}`);
}

/**
 * The Registry on etcd v3, in the SPEC layout. Every write that touches an instance's two
 * keys (service address + state) is one transaction, so a watcher never sees one without
 * the other; read-modify-write paths compare mod revisions and retry.
 */
export class EtcdRegistry implements Registry {
  readonly prefixes: { services: string; switchyard: string };
  /**
   * The underlying etcd3 client, for adapters that need more (agent results, locks). Its
   * calls share the operation deadline (etcd.commandTimeout); leases it keeps alive are
   * revoked by close().
   */
  readonly client: LeaseKeepingEtcd3;
  readonly layout: KeyLayout;
  private readonly log: Logger;
  private readonly healthTimeoutMs: number;
  private readonly now: () => Date;
  private readonly watches = new Set<ResumableWatch>();
  private readonly healthClients = new Map<string, Etcd3>();
  private closed = false;

  constructor(
    private readonly settings: EtcdSettings,
    layout: KeyLayout,
    private readonly opts: EtcdRegistryOptions = {},
  ) {
    this.layout = layout;
    this.prefixes = { services: layout.services, switchyard: layout.switchyard };
    this.client = createEtcdClient(settings);
    this.log = opts.log ?? createLogger();
    this.healthTimeoutMs = opts.healthTimeoutMs ?? 1000;
    this.now = opts.now ?? (() => new Date());
  }

  /** The configured endpoints, for error messages of adapters built on `client`. */
  get endpoints(): readonly string[] {
    return this.settings.endpoints;
  }

  /** etcd.commandTimeout in ms. */
  get commandTimeoutMs(): number {
    return this.settings.commandTimeoutMs;
  }

  /**
   * Run several etcd calls as one operation: they share one deadline (etcd.commandTimeout),
   * so a read-then-write does not get the full budget twice.
   */
  operation<T>(fn: () => Promise<T>): Promise<T> {
    return withinDeadline(this.settings.commandTimeoutMs, fn);
  }

  async register(service: string, instance: string, address: string, opts: RegisterOptions): Promise<{ created: boolean }> {
    return this.operation(() => this.registerNow(service, instance, address, opts));
  }

  private async registerNow(service: string, instance: string, address: string, opts: RegisterOptions): Promise<{ created: boolean }> {
    checkName('service', service);
    checkName('instance', instance);
    const parsed = typeof address === 'string' ? parseHostPort(address) : 'expected host:port';
    if (typeof parsed === 'string') badArgs(`address ${JSON.stringify(address)} is invalid: ${parsed}`);
    checkBy(opts.by);
    const { weight, ttlMs } = opts;
    if (weight !== undefined && !isWeight(weight)) {
      badArgs(`weight must be a whole number 0-${MAX_WEIGHT}, got ${weight}`);
    }
    if (ttlMs !== undefined && !(Number.isFinite(ttlMs) && ttlMs > 0)) badArgs(`ttl must be a positive duration, got ${ttlMs}ms`);

    const action = `registering ${service}/${instance}`;
    const svcKey = this.layout.serviceKey(service, instance);
    const stKey = this.layout.stateKey(service, instance);
    // A fresh lease on every registration and no keepalive: like registrator's TTL
    // refresh, an instance stays only as long as something keeps registering it.
    const lease =
      ttlMs === undefined ? undefined : (await this.call(action, () => this.client.leaseClient.leaseGrant({ TTL: Math.ceil(ttlMs / 1000), ID: 0 }))).ID;
    try {
      // Guess "not registered yet" first: a new instance (the case a scale-up or a fresh
      // container waits on) then costs one round trip. A wrong guess fails the compare and
      // the failure branch reads both keys, so every later attempt is a plain compare-and-swap.
      let [svcKv, stKv]: (IKeyValue | undefined)[] = [undefined, undefined];
      for (let attempt = 0; attempt <= CAS_ATTEMPTS; attempt++) {
        const prev = stKv ? decodeState(stKv.value.toString()) : undefined;
        if (isProblem(prev)) this.log.warn({ key: stKey, problem: prev.problem }, 'replacing an invalid state record');
        const prevState = prev && !isProblem(prev) ? prev : undefined;
        // A drained instance that re-registers (a restart, a TTL refresh) stays drained.
        const record: StateRecord = {
          state: prevState?.state ?? 'ready',
          weight: weight ?? prevState?.weight ?? DEFAULT_WEIGHT,
          by: opts.by,
          at: this.now().toISOString(),
        };
        const res = await this.call(action, () =>
          this.client.kv.txn({
            compare: [unchanged(svcKey, svcKv), unchanged(stKey, stKv)],
            success: [
              // On the instance's lease: a registration that expires leaves no attribution behind.
              causeOp(this.layout, opts.by, this.now(), lease),
              putOp(svcKey, address, lease),
              putOp(stKey, encodeState(record), lease),
            ],
            failure: [rangeOp(svcKey), rangeOp(stKey)],
          }),
        );
        if (res.succeeded) return { created: svcKv === undefined };
        [svcKv, stKv] = res.responses.map((r) => r.response_range?.kvs[0]);
      }
      throw new SwitchyardError('E_CONFLICT', `${service}/${instance} kept changing while registering it; try again`);
    } catch (err) {
      if (lease !== undefined) await this.revoke(lease);
      throw err;
    }
  }

  async deregister(service: string, instance: string, opts: { address?: string } = {}): Promise<boolean> {
    checkName('service', service);
    checkName('instance', instance);
    const svcKey = this.layout.serviceKey(service, instance);
    const res = await this.call(`deregistering ${service}/${instance}`, () =>
      this.client.kv.txn({
        compare: opts.address === undefined ? [] : [holds(svcKey, opts.address)],
        success: [causeOp(this.layout, 'switchyard', this.now()), deleteOp(svcKey), deleteOp(this.layout.stateKey(service, instance))],
        failure: [],
      }),
    );
    return res.succeeded && res.responses.some((r) => Number(r.response_delete_range?.deleted ?? 0) > 0);
  }

  async list(service?: string): Promise<Listing> {
    if (service !== undefined) checkName('service', service);
    return this.operation(() => this.listNow(service));
  }

  private async listNow(service: string | undefined): Promise<Listing> {
    const action = service === undefined ? 'listing instances' : `listing ${service}`;
    for (let attempt = 1; ; attempt++) {
      const svc = await this.call(action, () => this.client.getAll().prefix(this.layout.servicesDir(service)).exec());
      try {
        // Same revision as the first read: the two prefixes describe one moment.
        const st = await this.client.getAll().prefix(this.layout.stateDir(service)).revision(svc.header.revision).exec();
        return buildListing(this.layout, svc.kvs, st.kvs, svc.header.revision);
      } catch (err) {
        // Compacted between the two reads (rare): read both again.
        if (err instanceof GRPCOutOfRangeError && attempt < 3) continue;
        throw toRegistryError(err, this.settings.endpoints, action);
      }
    }
  }

  async get(service: string, instance: string): Promise<Instance | undefined> {
    checkName('service', service);
    checkName('instance', instance);
    const svcKey = this.layout.serviceKey(service, instance);
    const stKey = this.layout.stateKey(service, instance);
    const [svcKv, stKv] = await this.readKeys([svcKey, stKey], `reading ${service}/${instance}`);
    if (!svcKv) return undefined;
    const address = decodeAddress(svcKv.value.toString());
    if (isProblem(address)) throw new SwitchyardError('E_REGISTRY_VALUE', `${svcKey}: ${address.problem}`);
    const state = stKv ? decodeState(stKv.value.toString()) : undefined;
    if (isProblem(state)) throw new SwitchyardError('E_REGISTRY_VALUE', `${stKey}: ${state.problem}`);
    const lease = leaseOf(svcKv);
    return { service, instance, address, ...(state ? { state } : {}), ...(lease ? { lease } : {}), modRevision: svcKv.mod_revision };
  }

  async setState(service: string, instance: string, state: InstanceState, by: string): Promise<void> {
    return this.operation(() => this.setStateNow(service, instance, state, by));
  }

  private async setStateNow(service: string, instance: string, state: InstanceState, by: string): Promise<void> {
    checkName('service', service);
    checkName('instance', instance);
    if (!INSTANCE_STATES.includes(state)) badArgs(`state must be one of ${INSTANCE_STATES.join(', ')}, got ${JSON.stringify(state)}`);
    checkBy(by);
    const action = `setting ${service}/${instance} to ${state}`;
    const svcKey = this.layout.serviceKey(service, instance);
    const stKey = this.layout.stateKey(service, instance);
    for (let attempt = 1; attempt <= CAS_ATTEMPTS; attempt++) {
      const [svcKv, stKv] = await this.readKeys([svcKey, stKey], action);
      if (!svcKv) throw new SwitchyardError('E_NOT_FOUND', `${service}/${instance} is not registered`);
      const prev = stKv ? decodeState(stKv.value.toString()) : undefined;
      const record: StateRecord = {
        state,
        weight: prev && !isProblem(prev) ? prev.weight : DEFAULT_WEIGHT,
        by,
        at: this.now().toISOString(),
      };
      // The state key shares the instance's lease so the two disappear together.
      const ok = await this.txn(
        action,
        [unchanged(svcKey, svcKv), unchanged(stKey, stKv)],
        [causeOp(this.layout, by, this.now(), leaseOf(svcKv)), putOp(stKey, encodeState(record), leaseOf(svcKv))],
      );
      if (ok) return;
    }
    throw new SwitchyardError('E_CONFLICT', `${service}/${instance} kept changing while setting its state; try again`);
  }

  async setWeight(service: string, instance: string, weight: number, by: string): Promise<void> {
    return this.operation(() => this.setWeightNow(service, instance, weight, by));
  }

  /**
   * Only the state key is rewritten, on the lease the address key already has: re-registering
   * would grant a fresh lease (or none), silently dropping a TTL registration's.
   */
  private async setWeightNow(service: string, instance: string, weight: number, by: string): Promise<void> {
    checkName('service', service);
    checkName('instance', instance);
    if (!isWeight(weight)) badArgs(`weight must be a whole number 0-${MAX_WEIGHT}, got ${weight}`);
    checkBy(by);
    const action = `setting the weight of ${service}/${instance} to ${weight}`;
    const svcKey = this.layout.serviceKey(service, instance);
    const stKey = this.layout.stateKey(service, instance);
    for (let attempt = 1; attempt <= CAS_ATTEMPTS; attempt++) {
      const [svcKv, stKv] = await this.readKeys([svcKey, stKey], action);
      if (!svcKv) throw new SwitchyardError('E_NOT_FOUND', `${service}/${instance} is not registered`);
      const prev = stKv ? decodeState(stKv.value.toString()) : undefined;
      const record: StateRecord = {
        state: prev && !isProblem(prev) ? prev.state : 'ready',
        weight,
        by,
        at: this.now().toISOString(),
      };
      const ok = await this.txn(
        action,
        [unchanged(svcKey, svcKv), unchanged(stKey, stKv)],
        [causeOp(this.layout, by, this.now(), leaseOf(svcKv)), putOp(stKey, encodeState(record), leaseOf(svcKv))],
      );
      if (ok) return;
    }
    throw new SwitchyardError('E_CONFLICT', `${service}/${instance} kept changing while setting its weight; try again`);
  }

  async getDesired(service: string): Promise<DesiredRecord | undefined> {
    checkName('service', service);
    const key = this.layout.desiredKey(service);
    const value = await this.call(`reading the desired replicas of ${service}`, () => this.client.get(key).string());
    if (value === null) return undefined;
    const rec = decodeDesired(value);
    if (isProblem(rec)) throw new SwitchyardError('E_REGISTRY_VALUE', `${key}: ${rec.problem}`);
    return rec;
  }

  async setDesired(service: string, replicas: number, by: string): Promise<void> {
    checkName('service', service);
    if (!(Number.isInteger(replicas) && replicas >= 0 && replicas <= MAX_REPLICAS)) {
      badArgs(`replicas must be a whole number 0-${MAX_REPLICAS}, got ${replicas}`);
    }
    checkBy(by);
    const now = this.now();
    const value = encodeDesired({ replicas, by, at: now.toISOString() });
    await this.txn(`setting the desired replicas of ${service}`, [], [causeOp(this.layout, by, now), putOp(this.layout.desiredKey(service), value)]);
  }

  /**
   * Watch the keys under `prefix`, taken as a directory (`/services` watches
   * `/services/…`, not `/services-old`). `''` watches both registry prefixes through one
   * etcd watch, so the two keys of a registration arrive in one onEvents batch.
   * `fromRevision` is the last revision already seen (e.g. Listing.revision): changes
   * after it are streamed and no initial onResync is made. The revision passed to
   * onEvents/onResync is the one to resume from.
   */
  async watch(prefix: string, handlers: WatchHandlers, fromRevision?: string): Promise<WatchHandle> {
    // The feed's bookkeeping (attribution, position, election) is nobody else's news: an
    // agent watching '' should not wake up every time the feed saves its position.
    const scope =
      prefix === '' ? directoryScope(this.registryDirs(), { except: [this.layout.feedDir()] }) : directoryScope([prefix.endsWith('/') ? prefix : `${prefix}/`]);
    return this.startWatch(scope, handlers, fromRevision);
  }

  /**
   * watch('') plus the attribution key written with every change (see attribution.ts), in
   * the same batches: what the #ops feed needs to say who and why.
   */
  async watchAttributed(handlers: WatchHandlers, fromRevision?: string): Promise<WatchHandle> {
    // Feed mutes are watched too: one that runs out is news (feed-events.ts).
    const scope = directoryScope(this.registryDirs(), {
      except: [this.layout.feedDir()],
      alsoKeys: [this.layout.causeKey()],
      alsoDirs: [`${this.layout.feedDir()}mute/`],
    });
    return this.startWatch(scope, handlers, fromRevision);
  }

  private registryDirs(): string[] {
    return [this.layout.servicesDir(), `${this.layout.switchyard}/`];
  }

  private async startWatch(scope: WatchScope, handlers: WatchHandlers, fromRevision: string | undefined): Promise<WatchHandle> {
    if (fromRevision !== undefined && !/^[1-9]\d{0,18}$/.test(fromRevision)) {
      badArgs(`fromRevision must be a positive revision number, got ${JSON.stringify(fromRevision)}`);
    }
    if (this.closed) throw new SwitchyardError('E_UNAVAILABLE', 'the registry is closed');
    const watch = new ResumableWatch({
      client: this.client,
      scope,
      handlers,
      endpoints: this.settings.endpoints,
      log: this.log,
      ...(this.opts.watchBackoff ? { backoff: this.opts.watchBackoff } : {}),
    });
    this.watches.add(watch);
    const handle: WatchHandle = {
      close: async () => {
        this.watches.delete(watch);
        await watch.close();
      },
    };
    try {
      await watch.start(fromRevision);
    } catch (err) {
      await handle.close();
      throw err;
    }
    return handle;
  }

  async health(): Promise<EtcdHealth> {
    const endpoints = await Promise.all(this.settings.endpoints.map((ep) => endpointHealth(this.healthClient(ep), ep, this.healthTimeoutMs)));
    // A cluster with quorum serves reads and writes with a member down: "ok" is a majority of
    // the configured endpoints answering, and the ones that did not are named beside it.
    const up = endpoints.filter((e) => e.ok).length;
    return { ok: up * 2 > endpoints.length, endpoints };
  }

  /**
   * Revoke the leases this process keeps alive (its locks and status keys go at once, so
   * a successor need not wait for the TTL), end the watches and close the connections.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(
      this.client
        .keptLeases()
        .map((lease) =>
          lease
            .revoke()
            .catch((err: unknown) => this.log.warn({ err: describeEtcdError(err) }, 'could not revoke a lease on closing; its keys expire with its TTL')),
        ),
    );
    await Promise.all([...this.watches].map((w) => w.close()));
    this.watches.clear();
    this.client.close();
    for (const c of this.healthClients.values()) c.close();
    this.healthClients.clear();
  }

  /** One client per endpoint, so health() says which endpoint is down. */
  private healthClient(endpoint: string): Etcd3 {
    let client = this.healthClients.get(endpoint);
    if (!client) {
      client = createEtcdClient({ ...this.settings, commandTimeoutMs: this.healthTimeoutMs }, [endpoint], { retry: false });
      this.healthClients.set(endpoint, client);
    }
    return client;
  }

  private async call<T>(action: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toRegistryError(err, this.settings.endpoints, action);
    }
  }

  /** Several keys read at one revision (a read-only transaction). */
  private async readKeys(keys: string[], action: string): Promise<(IKeyValue | undefined)[]> {
    const res = await this.call(action, () => this.client.kv.txn({ compare: [], success: keys.map(rangeOp), failure: [] }));
    return res.responses.map((r) => r.response_range?.kvs[0]);
  }

  private async txn(action: string, compare: ICompare[], success: IRequestOp[]): Promise<boolean> {
    const res = await this.call(action, () => this.client.kv.txn({ compare, success, failure: [] }));
    return res.succeeded;
  }

  private async revoke(lease: string): Promise<void> {
    try {
      await this.client.leaseClient.leaseRevoke({ ID: lease });
    } catch (err) {
      // The lease holds no keys and expires by itself; revoking is only tidiness.
      this.log.debug({ err, lease }, 'could not revoke an unused lease');
    }
  }
}

/**
 * The registry for a validated config. `password` is ETCD_PASSWORD, passed in by the
 * caller; TLS files are read here, so a bad path fails at start-up with E_CONFIG.
 */
export function createEtcdRegistry(
  config: { etcd: EtcdConfig; registry: Config['registry'] },
  opts: EtcdClientOptions & EtcdRegistryOptions = {},
): EtcdRegistry {
  const { password, ...registryOpts } = opts;
  const settings = resolveEtcdSettings(config.etcd, password !== undefined ? { password } : {});
  return new EtcdRegistry(settings, KeyLayout.fromConfig(config.registry), registryOpts);
}
