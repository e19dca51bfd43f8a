import { etcdFeedLookups } from '../adapters/etcd/feed-lookups.js';
import type { EtcdRegistry } from '../adapters/etcd/registry.js';
import type { FeedActionSources } from '../adapters/slack/feed-actions.js';
import type { Router } from '../core/router.js';

/** What the feed's buttons and the message shortcut look up: etcd for facts, the router's ACL for rights. */
export function feedActionSources(o: { registry: EtcdRegistry; router: Router }): FeedActionSources {
  return {
    ...etcdFeedLookups(o.registry),
    may: (caller, command) => o.router.visibleCommands(caller).some((c) => c.name === command),
  };
}
