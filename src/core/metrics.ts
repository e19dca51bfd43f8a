import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics, one registry per process (tests create their own). */
export function createMetrics(opts: { defaults?: boolean } = {}) {
  const registry = new Registry();
  // Process and Node.js metrics keep their standard names (process_*, nodejs_*), which stock
  // dashboards and alerts expect; only our own metrics carry switchyard_.
  if (opts.defaults) collectDefaultMetrics({ register: registry });
  // The feed pacer registers what these gauges read; until then they read 0.
  const feedProbe = { depth: () => 0, lagSeconds: () => 0 };
  return {
    registry,
    feedProbe,
    commands: new Counter({
      name: 'switchyard_commands_total',
      help: 'Commands by name and result (ok, error, denied, invalid, confirmation_needed, approval_needed)',
      labelNames: ['command', 'result'] as const,
      registers: [registry],
    }),
    aclRefusals: new Counter({
      name: 'switchyard_acl_refusals_total',
      help: 'Commands refused by the ACL',
      labelNames: ['command'] as const,
      registers: [registry],
    }),
    commandDuration: new Histogram({
      name: 'switchyard_command_duration_seconds',
      help: 'Command handling time',
      labelNames: ['command'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    feedQueueDepth: new Gauge({
      name: 'switchyard_feed_queue_depth',
      help: 'Feed items (registry changes and other events) waiting to be posted',
      registers: [registry],
      collect() {
        this.set(feedProbe.depth());
      },
    }),
    feedLag: new Gauge({
      name: 'switchyard_feed_lag_seconds',
      help: 'How long the oldest unposted feed item has waited',
      registers: [registry],
      collect() {
        this.set(feedProbe.lagSeconds());
      },
    }),
    feedLeader: new Gauge({
      name: 'switchyard_feed_poster',
      help: '1 while this replica posts the #ops feed (elected among replicas)',
      registers: [registry],
    }),
    feedChanges: new Counter({
      name: 'switchyard_feed_changes_total',
      help: 'Registry changes seen by the feed, by kind',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    feedMessages: new Counter({
      name: 'switchyard_feed_messages_total',
      help: 'Feed posts to Slack by result (posted, rate_limited, failed)',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    feedGaps: new Counter({
      name: 'switchyard_feed_gaps_total',
      help: 'Times etcd had compacted history the feed needed',
      registers: [registry],
    }),
    applies: new Counter({
      name: 'switchyard_applies_total',
      help: 'HAProxy applies reported by agents, by method (runtime, reload, none, other) and result',
      labelNames: ['method', 'result'] as const,
      registers: [registry],
    }),
    applyDuration: new Histogram({
      name: 'switchyard_apply_duration_seconds',
      help: 'HAProxy apply duration as reported by agents',
      labelNames: ['method', 'result'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
