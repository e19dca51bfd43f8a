/**
 * The agent's view of the registry, kept from the watch alone (never polled): the keys
 * under the services prefix and the switchyard state prefix, as text.
 */
import { buildListing, type RawKv } from '../adapters/etcd/codec.js';
import type { KeyLayout } from '../adapters/etcd/keys.js';
import type { Listing, RegistryEvent } from '../core/registry.js';

interface Entry {
  value: string;
  revision: string;
  lease?: string;
}

export class RegistrySnapshot {
  private readonly services = new Map<string, Entry>();
  private readonly states = new Map<string, Entry>();
  private revision = '0';
  private readonly servicesDir: string;
  private readonly stateDir: string;

  constructor(private readonly layout: KeyLayout) {
    this.servicesDir = layout.servicesDir();
    this.stateDir = layout.stateDir();
  }

  private table(key: string): Map<string, Entry> | undefined {
    if (key.startsWith(this.servicesDir)) return this.services;
    if (key.startsWith(this.stateDir)) return this.states;
    // Agent reports, locks, feed bookkeeping: not routing data.
    return undefined;
  }

  /** Replace everything (initial read, or after compaction). */
  reset(snapshot: { key: string; value: string }[], revision: string): void {
    this.services.clear();
    this.states.clear();
    for (const kv of snapshot) this.table(kv.key)?.set(kv.key, { value: kv.value, revision });
    this.revision = revision;
  }

  /** Apply watch events; true when any of them can change routing. */
  apply(events: RegistryEvent[], revision: string): boolean {
    let relevant = false;
    for (const ev of events) {
      const table = this.table(ev.key);
      if (!table) continue;
      relevant = true;
      if (ev.type === 'delete') table.delete(ev.key);
      else table.set(ev.key, { value: ev.value, revision: ev.revision, ...(ev.lease ? { lease: ev.lease } : {}) });
    }
    this.revision = revision;
    return relevant;
  }

  /** The listing (validated instances + problems) at the current revision. */
  listing(): Listing {
    const raw = (m: Map<string, Entry>): RawKv[] =>
      [...m].map(([key, e]) => ({ key: Buffer.from(key), value: Buffer.from(e.value), mod_revision: e.revision, lease: e.lease ?? '0' }));
    return buildListing(this.layout, raw(this.services), raw(this.states), this.revision);
  }
}
