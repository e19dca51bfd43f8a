import type { DesiredRecord, Instance, InstanceState, Listing, Registry, WatchHandle } from '../../src/core/registry.js';
import { SwitchyardError } from '../../src/core/errors.js';

/** What a caller gets back: a copy, so mutating it cannot change the registry behind etcd's back. */
const copy = <T>(v: T): T => structuredClone(v);

/** A small in-memory Registry for unit tests of the core and plugins (no watch support). */
export class MemoryRegistry implements Registry {
  readonly prefixes = { services: '/services', switchyard: '/switchyard' };
  readonly instances = new Map<string, Instance>();
  readonly desired = new Map<string, DesiredRecord>();
  private rev = 1;

  async register(service: string, instance: string, address: string, opts: { ttlMs?: number; weight?: number; by: string }) {
    const key = `${service}/${instance}`;
    const prev = this.instances.get(key);
    this.instances.set(key, {
      service,
      instance,
      address,
      state: {
        state: prev?.state?.state ?? 'ready',
        weight: opts.weight ?? prev?.state?.weight ?? 100,
        by: opts.by,
        at: new Date().toISOString(),
      },
      ...(opts.ttlMs ? { lease: String(++this.rev) } : {}),
      modRevision: String(++this.rev),
    });
    return { created: !prev };
  }
  async deregister(service: string, instance: string) {
    this.rev++;
    return this.instances.delete(`${service}/${instance}`);
  }
  async list(service?: string): Promise<Listing> {
    const instances = [...this.instances.values()].filter((i) => !service || i.service === service);
    return { instances: copy(instances), problems: [], revision: String(this.rev) };
  }
  async get(service: string, instance: string) {
    const i = this.instances.get(`${service}/${instance}`);
    return i && copy(i);
  }
  private update(service: string, instance: string, change: (i: Instance) => Instance) {
    const key = `${service}/${instance}`;
    const i = this.instances.get(key);
    if (!i) throw new SwitchyardError('E_NOT_FOUND', `${service}/${instance} is not registered`);
    this.instances.set(key, { ...change(i), modRevision: String(++this.rev) });
  }
  async setState(service: string, instance: string, state: InstanceState, by: string) {
    this.update(service, instance, (i) => ({ ...i, state: { state, weight: i.state?.weight ?? 100, by, at: new Date().toISOString() } }));
  }
  async setWeight(service: string, instance: string, weight: number, by: string) {
    this.update(service, instance, (i) => ({ ...i, state: { state: i.state?.state ?? 'ready', weight, by, at: new Date().toISOString() } }));
  }
  async getDesired(service: string) {
    const d = this.desired.get(service);
    return d && copy(d);
  }
  async setDesired(service: string, replicas: number, by: string) {
    this.desired.set(service, { replicas, by, at: new Date().toISOString() });
  }
  async watch(): Promise<WatchHandle> {
    throw new Error('MemoryRegistry does not watch');
  }
  async health() {
    return { ok: true, endpoints: [{ endpoint: 'memory', ok: true, version: 'test' }] };
  }
  async close() {}
}
