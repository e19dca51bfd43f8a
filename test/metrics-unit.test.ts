/**
 * The /metrics contract as dashboards and alerts read it: each metric's name, type, help and
 * labels, the histogram buckets, the feed gauges read at scrape time, and the process metrics
 * only when asked for. test/metrics.test.ts checks values after real commands; this file pins
 * the declarations (mutation testing, docs/TESTING.md).
 */
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../src/core/metrics.js';

describe('createMetrics', () => {
  it('declares each metric with its type and help text', async () => {
    const m = createMetrics();
    const text = await m.registry.metrics();
    const declared = text
      .split('\n')
      .filter((l) => l.startsWith('# '))
      .map((l) => l.slice(2));
    expect(declared).toEqual([
      'HELP switchyard_commands_total Commands by name and result (ok, error, denied, invalid, confirmation_needed, approval_needed)',
      'TYPE switchyard_commands_total counter',
      'HELP switchyard_acl_refusals_total Commands refused by the ACL',
      'TYPE switchyard_acl_refusals_total counter',
      'HELP switchyard_command_duration_seconds Command handling time',
      'TYPE switchyard_command_duration_seconds histogram',
      'HELP switchyard_feed_queue_depth Feed items (registry changes and other events) waiting to be posted',
      'TYPE switchyard_feed_queue_depth gauge',
      'HELP switchyard_feed_lag_seconds How long the oldest unposted feed item has waited',
      'TYPE switchyard_feed_lag_seconds gauge',
      'HELP switchyard_feed_poster 1 while this replica posts the #ops feed (elected among replicas)',
      'TYPE switchyard_feed_poster gauge',
      'HELP switchyard_feed_changes_total Registry changes seen by the feed, by kind',
      'TYPE switchyard_feed_changes_total counter',
      'HELP switchyard_feed_messages_total Feed posts to Slack by result (posted, rate_limited, failed)',
      'TYPE switchyard_feed_messages_total counter',
      'HELP switchyard_feed_gaps_total Times etcd had compacted history the feed needed',
      'TYPE switchyard_feed_gaps_total counter',
      'HELP switchyard_applies_total HAProxy applies reported by agents, by method (runtime, reload, none, other) and result',
      'TYPE switchyard_applies_total counter',
      'HELP switchyard_apply_duration_seconds HAProxy apply duration as reported by agents',
      'TYPE switchyard_apply_duration_seconds histogram',
    ]);
    expect(text).not.toMatch(/^process_/m);
  });

  it('labels and buckets: command durations up to a minute, apply durations up to 30 s', async () => {
    const m = createMetrics();
    m.commands.inc({ command: 'status', result: 'ok' });
    m.aclRefusals.inc({ command: 'scale' });
    m.commandDuration.observe({ command: 'status' }, 0.02);
    m.feedChanges.inc({ kind: 'put' });
    m.feedMessages.inc({ result: 'posted' });
    m.applies.inc({ method: 'runtime', result: 'ok' });
    m.applyDuration.observe({ method: 'runtime', result: 'ok' }, 0.02);
    const text = await m.registry.metrics();
    expect(text).toContain('switchyard_commands_total{command="status",result="ok"} 1');
    expect(text).toContain('switchyard_acl_refusals_total{command="scale"} 1');
    expect(text).toContain('switchyard_feed_changes_total{kind="put"} 1');
    expect(text).toContain('switchyard_feed_messages_total{result="posted"} 1');
    expect(text).toContain('switchyard_applies_total{method="runtime",result="ok"} 1');
    const buckets = (name: string) => [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"`, 'gm'))].map((x) => x[1]).join(' ');
    expect(buckets('switchyard_command_duration_seconds')).toBe('0.001 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 30 60 +Inf');
    expect(buckets('switchyard_apply_duration_seconds')).toBe('0.001 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 30 +Inf');
  });

  it('the feed gauges read 0 until a feed registers, then what its probe says at each scrape', async () => {
    const m = createMetrics();
    expect(await m.registry.getSingleMetricAsString('switchyard_feed_queue_depth')).toMatch(/^switchyard_feed_queue_depth 0$/m);
    expect(await m.registry.getSingleMetricAsString('switchyard_feed_lag_seconds')).toMatch(/^switchyard_feed_lag_seconds 0$/m);
    let depth = 3;
    m.feedProbe.depth = () => depth;
    m.feedProbe.lagSeconds = () => 1.5;
    expect(await m.registry.getSingleMetricAsString('switchyard_feed_queue_depth')).toMatch(/^switchyard_feed_queue_depth 3$/m);
    depth = 7;
    expect(await m.registry.getSingleMetricAsString('switchyard_feed_queue_depth')).toMatch(/^switchyard_feed_queue_depth 7$/m);
    expect(await m.registry.getSingleMetricAsString('switchyard_feed_lag_seconds')).toMatch(/^switchyard_feed_lag_seconds 1.5$/m);
  });

  it('adds the standard process and Node.js metrics, unprefixed, only when asked', async () => {
    const text = await createMetrics({ defaults: true }).registry.metrics();
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes /m);
    expect(text).not.toMatch(/^switchyard_process_/m);
  });
});
