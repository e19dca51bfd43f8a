/**
 * The history recorder: the feed's own machinery (watch from a saved position, attribution,
 * an elected single writer, the position moved only after the write was accepted) with etcd
 * instead of Slack as the outlet.
 *
 * Why the elected watcher writes history rather than each writer in its transaction: lease
 * expiries and outside edits (etcdctl) have no switchyard writer, and they are exactly what
 * the watch attributes. Keys are per revision, so a replay after a crash rewrites the same
 * keys: exactly once in effect. It has its own election and position so history is kept
 * whether or not Slack is reachable or a feed channel is set.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { EtcdPosterElection } from '../adapters/etcd/election.js';
import { EtcdFeedPosition } from '../adapters/etcd/feed-position.js';
import { EtcdChangeSource } from '../adapters/etcd/feed-source.js';
import type { EtcdHistory, HistoryRetention } from '../adapters/etcd/history.js';
import type { EtcdRegistry } from '../adapters/etcd/registry.js';
import type { Logger } from '../core/log.js';
import { FeedPacer, type FeedOutlet, type SendFailure } from '../feed/pacer.js';
import { FeedService } from '../feed/service.js';
import type { FeedChange, FeedItem } from '../feed/types.js';

export interface HistoryRecorderOptions {
  registry: EtcdRegistry;
  history: EtcdHistory;
  retention: HistoryRetention;
  log: Logger;
  /** Default: host/pid/random. */
  replica?: string;
  /** Election lease TTL. Default 10 s. */
  ttlSec?: number;
  /** How often the recorder trims by age and count. Default 60 s. */
  trimEveryMs?: number;
}

export interface HistoryRecorder {
  readonly service: FeedService;
  /** Trim now (also runs on a timer while this replica records). */
  trim(): Promise<number>;
  stop(): Promise<void>;
}

type Batch = FeedChange[];

class HistoryOutlet implements FeedOutlet<Batch> {
  constructor(private readonly history: EtcdHistory) {}

  plan(items: FeedItem[]): Batch[] {
    // A feed mute running out is news for the feed, not a registry change.
    const changes = items.flatMap((i) => (i.change && i.change.kind !== 'mute-ended' ? [i.change] : []));
    return changes.length ? [changes] : [];
  }

  async send(batch: Batch): Promise<undefined> {
    await this.history.record(batch, new Date());
    return undefined;
  }

  classify(): SendFailure {
    return { backoff: true };
  }

  describe(batch: Batch): string {
    return `${batch.length} change(s) up to revision ${batch.at(-1)?.revision ?? '?'}`;
  }
}

export function startHistoryRecorder(o: HistoryRecorderOptions): HistoryRecorder {
  const replica = o.replica ?? `${hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`;
  const log = o.log.child({ component: 'history', replica });
  // No pacing: etcd, not a Slack channel, takes these; a short quiet period batches bursts.
  const pacer = new FeedPacer(new HistoryOutlet(o.history), log, { minIntervalMs: 0, quietMs: 50, maxWaitMs: 250, backoff: { minMs: 500, maxMs: 5000 } });
  const service = new FeedService({
    source: new EtcdChangeSource(o.registry, log),
    position: new EtcdFeedPosition(o.registry, o.registry.layout.historyPositionKey()),
    election: new EtcdPosterElection({
      client: o.registry.client,
      layout: o.registry.layout,
      endpoints: o.registry.endpoints,
      replica,
      dir: o.registry.layout.historyElectionDir(),
      ...(o.ttlSec !== undefined ? { ttlSec: o.ttlSec } : {}),
      log,
    }),
    pacer,
    log,
    duty: 'records the change history',
  });
  service.start();
  let trimming: Promise<number> | undefined;
  // Trimming is paced (it can take a while over a backlog); stopping ends it between chunks.
  const stopTrim = new AbortController();
  const trim = () => {
    trimming ??= o.history.trim(o.retention, Date.now(), stopTrim.signal).finally(() => (trimming = undefined));
    return trimming;
  };
  const timer = setInterval(() => {
    if (!service.leading) return;
    trim().then(
      (n) => n > 0 && log.info({ deleted: n }, 'trimmed the change history'),
      (err: unknown) => log.warn({ err }, 'could not trim the change history'),
    );
  }, o.trimEveryMs ?? 60_000);
  timer.unref();
  return {
    service,
    trim,
    async stop() {
      clearInterval(timer);
      stopTrim.abort();
      await service.stop();
      await trimming?.catch(() => undefined);
    },
  };
}
