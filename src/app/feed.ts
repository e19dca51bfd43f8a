/**
 * Composition of the feed on etcd, for `serve` and `shell` (and tests that run either
 * in-process): the feed's parts stay free of etcd, the wiring lives here.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { EtcdPosterElection } from '../adapters/etcd/election.js';
import { EtcdFeedPosition } from '../adapters/etcd/feed-position.js';
import { EtcdChangeSource } from '../adapters/etcd/feed-source.js';
import type { EtcdRegistry } from '../adapters/etcd/registry.js';
import type { FeedSink } from '../core/feed.js';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../core/metrics.js';
import { FeedService, type ChangeQueue } from '../feed/service.js';
import { startFeedTail, type FeedTail } from '../feed/tail.js';
import type { FeedChange } from '../feed/types.js';

export interface FeedPosterOptions {
  registry: EtcdRegistry;
  /** The channel's pacer (SlackFeedSink.pacer). */
  pacer: ChangeQueue;
  log: Logger;
  metrics?: Metrics;
  /** Poster lease TTL: a dead poster is replaced after at most this long. Default 10 s. */
  ttlSec?: number;
  /** Default: host/pid/random. */
  replica?: string;
  idlePersistMs?: number;
  /** Election role and position key of this feed (default: the single feed's). */
  role?: string;
  positionKey?: string;
  filter?: (changes: FeedChange[]) => Promise<FeedChange[]>;
}

/** Campaign for the poster role and, while holding it, post the registry's changes. */
export function startFeedPoster(o: FeedPosterOptions): FeedService {
  const replica = o.replica ?? `${hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`;
  const log = o.log.child({ replica });
  const service = new FeedService({
    source: new EtcdChangeSource(o.registry, log),
    position: new EtcdFeedPosition(o.registry, o.positionKey),
    election: new EtcdPosterElection({
      client: o.registry.client,
      layout: o.registry.layout,
      endpoints: o.registry.endpoints,
      replica,
      ...(o.role !== undefined ? { role: o.role } : {}),
      ...(o.ttlSec !== undefined ? { ttlSec: o.ttlSec } : {}),
      log,
    }),
    pacer: o.pacer,
    log,
    ...(o.metrics ? { metrics: o.metrics } : {}),
    ...(o.idlePersistMs !== undefined ? { idlePersistMs: o.idlePersistMs } : {}),
    ...(o.filter ? { filter: o.filter } : {}),
  });
  service.start();
  return service;
}

/** The shell's feed: changes from now on, a plain line each. */
export function startShellFeed(o: { registry: EtcdRegistry; sink: FeedSink; log: Logger }): Promise<FeedTail> {
  return startFeedTail({ source: new EtcdChangeSource(o.registry, o.log), sink: o.sink, log: o.log });
}
