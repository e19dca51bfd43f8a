import type { EtcdRegistry } from '../adapters/etcd/registry.js';
import { decodeWatcherRecord, type WatcherRecord } from '../core/watcher-record.js';

/** The running watchers, from their records (each on its watcher's lease): for `status`. */
export async function listWatchers(registry: EtcdRegistry): Promise<WatcherRecord[]> {
  const dir = registry.layout.watchersDir();
  const all = await registry.operation(() => registry.client.getAll().prefix(dir).strings());
  return Object.values(all)
    .map(decodeWatcherRecord)
    .filter((r): r is WatcherRecord => r !== undefined)
    .sort((a, b) => a.host.localeCompare(b.host));
}
