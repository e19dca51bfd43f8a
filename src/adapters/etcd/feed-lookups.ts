/**
 * Read-only lookups behind the feed's buttons and the message shortcut: the registered
 * service names, and an agent's apply report as it was at a given revision.
 */
import { GRPCOutOfRangeError } from 'etcd3';
import { parseApplyResult, type ApplyResult } from '../../core/apply-result.js';
import { toRegistryError } from './errors.js';
import { prefixEnd } from './keys.js';
import type { EtcdRegistry } from './registry.js';

export interface FeedLookups {
  services(): Promise<string[]>;
  applyReport(agent: string, revision: string): Promise<{ result: ApplyResult } | { missing: 'compacted' | 'missing' | 'unreadable' }>;
}

export function etcdFeedLookups(registry: EtcdRegistry): FeedLookups {
  const { layout, client, endpoints } = registry;
  return {
    async services() {
      const dir = layout.servicesDir();
      let kvs;
      try {
        // Keys only: a big registry's addresses are not needed to know its service names.
        kvs = (await client.kv.range({ key: Buffer.from(dir), range_end: prefixEnd(dir), keys_only: true })).kvs;
      } catch (err) {
        throw toRegistryError(err, endpoints, 'listing the registered services');
      }
      const names = new Set<string>();
      for (const kv of kvs) {
        const ref = layout.parseServiceKey(kv.key.toString());
        if (typeof ref !== 'string') names.add(ref.service);
      }
      return [...names];
    },
    async applyReport(agent, revision) {
      const key = `${layout.agentsDir()}${agent}`;
      let kvs;
      try {
        kvs = (await client.kv.range({ key: Buffer.from(key), revision })).kvs;
      } catch (err) {
        // Compacted away (or, for a forged button, a revision from the future).
        if (err instanceof GRPCOutOfRangeError) return { missing: 'compacted' };
        throw toRegistryError(err, endpoints, `reading the apply report of ${agent}`);
      }
      const kv = kvs[0];
      if (!kv) return { missing: 'missing' };
      const result = parseApplyResult(kv.value.toString());
      return typeof result === 'string' ? { missing: 'unreadable' } : { result };
    },
  };
}
