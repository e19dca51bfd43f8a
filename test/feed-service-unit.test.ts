/**
 * FeedService with its ports faked: what the metrics count when a replica loses the poster
 * role and wins it back. test/feed-replicas.test.ts proves the hand-over itself on a real
 * etcd; this pins the counting, which a regained term would otherwise repeat (it resumes
 * from the saved position and sees again what it saw before).
 */
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { createMetrics } from '../src/core/metrics.js';
import type { ChangeHandlers, PosterTerm } from '../src/feed/ports.js';
import { FeedService } from '../src/feed/service.js';
import type { ChangeKind, FeedChange } from '../src/feed/types.js';

const change = (revision: number, kind: ChangeKind, instance: string): FeedChange => ({
  revision: String(revision),
  kind,
  group: 'web',
  subject: `web/${instance}`,
  what: kind,
  cause: { kind: 'outside' },
});

const term = (replica: string): PosterTerm => ({ replica, isCurrent: async () => true });

describe('FeedService metrics across poster terms (ports faked)', () => {
  it('counts each change once when the replica regains the role and re-reads from the saved position', async () => {
    const metrics = createMetrics();
    let election: { elected(t: PosterTerm): void; lost(t: PosterTerm): void } | undefined;
    const opened: { from: string; handlers: ChangeHandlers }[] = [];
    const feed = new FeedService({
      log: pino({ level: 'silent' }),
      metrics,
      // Nothing is ever posted here, so the saved position stays at 10 for both terms.
      position: { read: async () => ({ position: '10', current: '20' }), write: async () => true },
      source: {
        currentRevision: async () => '20',
        lastWriteRevision: async () => '20',
        open: async (from, handlers) => {
          opened.push({ from, handlers });
          return { close: async () => undefined };
        },
      },
      election: { run: (h) => void (election = h), stop: async () => undefined },
      pacer: { setGate: () => undefined, enqueue: () => undefined, dropChanges: () => 0, hasPendingChanges: () => false, stop: async () => undefined },
    });
    const counted = async () => Object.fromEntries((await metrics.feedChanges.get()).values.map((v) => [v.labels.kind, v.value]));
    feed.start();

    const first = term('a');
    election!.elected(first);
    await vi.waitFor(() => expect(opened).toHaveLength(1));
    // One revision can carry several changes (a register is one transaction): all count.
    opened[0]!.handlers.changes([change(11, 'added', 'web-1'), change(11, 'state', 'web-1')], '11');
    opened[0]!.handlers.changes([change(12, 'added', 'web-2')], '12');
    expect(await counted()).toEqual({ added: 2, state: 1 });

    election!.lost(first);
    await vi.waitFor(() => expect(feed.leading).toBe(false));
    election!.elected(term('a'));
    await vi.waitFor(() => expect(opened).toHaveLength(2));
    expect(opened[1]!.from).toBe('10');
    // The second term sees 11 and 12 again, then something new.
    opened[1]!.handlers.changes([change(11, 'added', 'web-1'), change(11, 'state', 'web-1')], '11');
    opened[1]!.handlers.changes([change(12, 'added', 'web-2'), change(13, 'removed', 'web-1')], '13');
    expect(await counted()).toEqual({ added: 2, state: 1, removed: 1 });
    await feed.stop();
  });
});
