import type { Logger } from '../../core/log.js';
import type { ChangeHandlers, ChangeSource } from '../../feed/ports.js';
import type { FeedChange } from '../../feed/types.js';
import { registryCall } from './errors.js';
import { interpretEvents } from './feed-events.js';
import type { EtcdRegistry } from './registry.js';

/** The registry's changes for the feed: EtcdRegistry.watch('') interpreted (see feed-events.ts). */
export class EtcdChangeSource implements ChangeSource {
  constructor(
    private readonly registry: EtcdRegistry,
    private readonly log: Logger,
  ) {}

  async currentRevision(): Promise<string> {
    const res = await this.read(this.registry.layout.causeKey(), 'reading the current revision');
    return res.header.revision;
  }

  async lastWriteRevision(): Promise<string> {
    const res = await this.read(this.registry.layout.causeKey(), 'reading the newest write');
    return res.kvs[0]?.mod_revision ?? '0';
  }

  async open(fromRevision: string, handlers: ChangeHandlers): Promise<{ close(): Promise<void> }> {
    const { layout } = this.registry;
    let last = fromRevision;
    return this.registry.watchAttributed(
      {
        onEvents: (events, revision) => {
          const { changes, relevant, unchanged } = interpretEvents(layout, events);
          if (unchanged) this.log.debug({ unchanged, revision }, 'registry rewrites with nothing new (TTL refreshes)');
          last = revision;
          if (relevant) handlers.changes(changes, revision);
        },
        onResync: (snapshot, revision, reason) => {
          // Only 'compacted' can happen: the watch always starts from a revision.
          if (reason === 'compacted') handlers.gap(gapChange(layout.servicesDir(), snapshot, last, revision), revision);
          last = revision;
        },
        onError: (err) => handlers.error(err),
      },
      fromRevision,
    );
  }

  private read(key: string, action: string) {
    return registryCall(this.registry.endpoints, action, () => this.registry.client.get(key).exec());
  }
}

function gapChange(servicesDir: string, snapshot: { key: string }[], after: string, upTo: string): FeedChange {
  const services = new Set<string>();
  let instances = 0;
  for (const { key } of snapshot) {
    if (!key.startsWith(servicesDir)) continue;
    const parts = key.slice(servicesDir.length).split('/');
    if (parts.length !== 2) continue;
    services.add(parts[0]!);
    instances++;
  }
  return {
    revision: upTo,
    kind: 'gap',
    group: '',
    subject: 'feed gap:',
    what:
      `etcd compacted its history, so the changes after revision ${after} up to ${upTo} cannot be listed one by one. ` +
      `The registry now holds ${instances} instance${instances === 1 ? '' : 's'} in ${services.size} service${services.size === 1 ? '' : 's'}; ` +
      'use status for the details.',
    cause: { kind: 'history' },
    problem: true,
  };
}
