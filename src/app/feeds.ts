/**
 * The Slack feeds of `serve`: one per `slack.feeds` entry (plus `slack.feedChannel`, the
 * one-feed shorthand for "everything"), each with its own paced sink, its own poster
 * election and position — so each channel is paced, coalesced and posted exactly once on
 * its own — and a filter: its route, then the mutes in force when it posts.
 */
import type { EtcdFeedMutes } from '../adapters/etcd/feed-mutes.js';
import type { EtcdRegistry } from '../adapters/etcd/registry.js';
import { SlackFeedSink } from '../adapters/slack/feed-sink.js';
import type { ChatClient } from '../adapters/slack/client.js';
import type { Config } from '../config/schema.js';
import type { FeedSink } from '../core/feed.js';
import type { Logger } from '../core/log.js';
import type { Metrics } from '../core/metrics.js';
import { FEED_KINDS, routeAcceptsEvent, routeFilter, type FeedRoute } from '../feed/routes.js';
import type { FeedService } from '../feed/service.js';
import type { FeedChange } from '../feed/types.js';
import { startFeedPoster } from './feed.js';

/** Every feed the config asks for; `feedChannel` is a feed of everything unless `feeds` has its channel. */
export function feedRoutes(config: Pick<Config, 'slack'>): FeedRoute[] {
  const routes: FeedRoute[] = (config.slack?.feeds ?? []).map((f) => ({ channel: f.channel, services: f.services, kinds: f.kinds, quiet: f.quiet }));
  const main = config.slack?.feedChannel;
  if (main && !routes.some((r) => r.channel === main)) routes.unshift({ channel: main, services: ['*'], kinds: [...FEED_KINDS], quiet: [] });
  return routes;
}

export interface SlackFeeds {
  /** Other events (ACL reloads, deaths…), each to the feeds whose kinds it matches. */
  sink: FeedSink;
  sinks: ReadonlyMap<string, SlackFeedSink>;
  instrument(metrics: Metrics): void;
  /** Start one poster per feed (once Slack is reachable). */
  startPosters(o: { registry: EtcdRegistry; mutes: EtcdFeedMutes; log: Logger; metrics?: Metrics; ttlSec?: number; replica?: string }): FeedService[];
  idle(): Promise<void>;
  stop(): Promise<void>;
}

export function buildSlackFeeds(o: { routes: readonly FeedRoute[]; client: ChatClient; log: Logger }): SlackFeeds {
  const sinks = new Map(o.routes.map((r) => [r.channel, new SlackFeedSink({ client: o.client, channel: r.channel, log: o.log })]));
  return {
    sink: {
      publish(event) {
        for (const r of o.routes) if (routeAcceptsEvent(r, event)) sinks.get(r.channel)!.publish(event);
      },
    },
    sinks,
    instrument(metrics) {
      const list = [...sinks.values()];
      for (const s of list) s.instrument(metrics);
      // One gauge for all feeds: the deepest queue and the oldest item are what page someone.
      metrics.feedProbe.depth = () => list.reduce((n, s) => n + s.pacer.depth, 0);
      metrics.feedProbe.lagSeconds = () => Math.max(0, ...list.map((s) => s.pacer.lagSeconds()));
    },
    startPosters(p) {
      // The first feed keeps the single feed's keys, so an upgrade resumes where it was.
      return o.routes.map((route, i) =>
        startFeedPoster({
          registry: p.registry,
          pacer: sinks.get(route.channel)!.pacer,
          log: p.log.child({ feed: route.channel }),
          ...(p.metrics ? { metrics: p.metrics } : {}),
          ...(p.ttlSec !== undefined ? { ttlSec: p.ttlSec } : {}),
          ...(p.replica !== undefined ? { replica: p.replica } : {}),
          ...(i === 0 ? {} : { role: `poster-${route.channel}`, positionKey: `${p.registry.layout.feedDir()}positions/${route.channel}` }),
          filter: feedFilter(route, p.mutes, p.log),
        }),
      );
    },
    async idle() {
      await Promise.all([...sinks.values()].map((s) => s.idle()));
    },
    async stop() {
      await Promise.all([...sinks.values()].map((s) => s.stop()));
    },
  };
}

function feedFilter(route: FeedRoute, mutes: EtcdFeedMutes, log: Logger): (changes: FeedChange[]) => Promise<FeedChange[]> {
  const accepts = routeFilter(route);
  return async (changes) => {
    const routed = changes.filter(accepts);
    if (routed.length === 0) return routed;
    let muted: Set<string>;
    try {
      muted = new Set((await mutes.list()).filter((m) => m.scope === 'all' || m.scope === route.channel).map((m) => m.service));
    } catch (err) {
      // Posting a muted change beats losing an unmuted one.
      log.warn({ err }, 'could not read feed mutes; posting unfiltered');
      return routed;
    }
    // A mute's end is told even while another scope still mutes the service.
    return routed.filter((c) => c.kind === 'gap' || c.kind === 'mute-ended' || !muted.has(c.group));
  };
}
