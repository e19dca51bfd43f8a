import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { interpretEvents } from '../src/adapters/etcd/feed-events.js';
import { KeyLayout } from '../src/adapters/etcd/keys.js';
import { planFeedMessages, type FeedMessage } from '../src/adapters/slack/feed-render.js';
import { LIMITS } from '../src/adapters/slack/render.js';
import type { RegistryEvent } from '../src/core/registry.js';
import { FeedPacer, type FeedOutlet, type SendFailure } from '../src/feed/pacer.js';
import type { FeedChange, FeedItem } from '../src/feed/types.js';

const layout = new KeyLayout('/services', '/switchyard');
const state = (s: string, weight = 100) => JSON.stringify({ state: s, weight, by: 'U1', at: '2024-01-01T00:00:00Z' });
const cause = (c: Record<string, string>) => JSON.stringify({ ...c, at: '2024-01-01T00:00:00Z' });
const put = (key: string, value: string, revision: string, extra: Partial<RegistryEvent> = {}): RegistryEvent =>
  ({ type: 'put', key, value, revision, ...extra }) as RegistryEvent;
const del = (key: string, revision: string, extra: Partial<RegistryEvent> = {}): RegistryEvent =>
  ({ type: 'delete', key, revision, ...extra }) as RegistryEvent;

describe('registry events → feed changes', () => {
  it('makes one attributed change of a registration transaction (cause, address and state at one revision)', () => {
    const { changes } = interpretEvents(layout, [
      put('/switchyard/feed/cause', cause({ by: 'U0ONCALL', command: 'register', requestId: 'r1', source: 'slack' }), '5'),
      put('/services/web/web-1', '10.0.0.1:80', '5'),
      put('/switchyard/state/web/web-1', state('ready', 50), '5'),
    ]);
    expect(changes).toEqual([
      expect.objectContaining({
        revision: '5',
        kind: 'added',
        subject: 'web/web-1',
        what: 'registered at 10.0.0.1:80 (weight 50)',
        cause: { kind: 'switchyard', by: 'U0ONCALL', command: 'register', requestId: 'r1', source: 'slack', at: '2024-01-01T00:00:00Z' },
      }),
    ]);
  });

  it('tells etcdctl writes, lease expiry and a container death apart', () => {
    const { changes } = interpretEvents(layout, [
      put('/services/web/a', '10.0.0.1:80', '6'),
      del('/services/web/b', '7', { prevValue: '10.0.0.2:80', prevLease: '42' }),
      del('/switchyard/state/web/b', '7', { prevValue: state('ready'), prevLease: '42' }),
      // The attribution of its registration was on the same lease: gone too, and no cause.
      del('/switchyard/feed/cause', '7', { prevValue: cause({ by: 'U1', command: 'register' }), prevLease: '42' }),
      put('/switchyard/feed/cause', cause({ by: 'docker', reason: 'container died (exit 137, OOM)' }), '8'),
      del('/services/web/c', '8', { prevValue: '10.0.0.3:80' }),
      del('/services/web/d', '9', { prevValue: '10.0.0.4:80' }),
    ]);
    expect(changes.map((c) => [c.subject, c.kind, c.cause.kind])).toEqual([
      ['web/a', 'added', 'outside'],
      ['web/b', 'removed', 'lease'],
      ['web/c', 'removed', 'switchyard'],
      ['web/d', 'removed', 'outside'],
    ]);
    expect(changes[2]!.cause).toMatchObject({ reason: 'container died (exit 137, OOM)' });
  });

  it('reports state and weight changes, skips TTL refreshes and the feed’s own keys', () => {
    const out = interpretEvents(layout, [
      put('/switchyard/state/web/a', state('drain'), '10', { prevValue: state('ready') }),
      put('/switchyard/state/web/b', state('ready', 10), '11', { prevValue: state('ready') }),
      // A TTL refresh: same address, same state, new lease and time.
      put('/services/web/c', '10.0.0.3:80', '12', { prevValue: '10.0.0.3:80', lease: '7' }),
      put('/switchyard/state/web/c', state('ready'), '12', { prevValue: state('ready') }),
      put('/switchyard/feed/position', '{"revision":"12"}', '13'),
      put('/switchyard/locks/web', 'x', '14'),
    ]);
    expect(out.changes.map((c) => [c.subject, c.kind, c.what])).toEqual([
      ['web/a', 'state', 'draining (was ready)'],
      ['web/b', 'weight', 'weight 100 → 10'],
    ]);
    expect(out.unchanged).toBe(1);
    expect(interpretEvents(layout, [put('/switchyard/feed/position', '{}', '15')]).relevant).toBe(false);
  });

  it('reads agent apply results: success, failure with haproxy’s lines, "nothing to do", a dead agent', () => {
    const ok = JSON.stringify({ agentId: 'lb-1', method: 'runtime', ok: true, durationMs: 2.6, changes: ['+web-4', '-web-2'], at: 'now' });
    const failed = JSON.stringify({
      agentId: 'lb-1',
      method: 'reload',
      ok: false,
      durationMs: 80,
      changes: [],
      error: ['[ALERT] line 1', '[ALERT] line 2'],
      failure: 'check',
      at: 'later',
    });
    const none = JSON.stringify({ agentId: 'lb-1', method: 'none', ok: true, durationMs: 0, changes: [], at: 'x' });
    const { changes } = interpretEvents(layout, [
      put('/switchyard/agents/lb-1', ok, '20'),
      put('/switchyard/agents/lb-1', failed, '21', { prevValue: ok }),
      put('/switchyard/agents/lb-1', none, '22', { prevValue: failed }),
      del('/switchyard/agents/lb-1', '23', { prevValue: none, prevLease: '9' }),
    ]);
    expect(changes.map((c) => [c.kind, c.what, c.problem ?? false])).toEqual([
      ['apply', 'runtime apply +web-4 −web-2 in 3 ms', false],
      ['apply', 'check failed in 80 ms: [ALERT] line 1 — kept the last good config', true],
      ['agent-gone', 'agent is gone', false],
    ]);
    expect(changes[1]!.notes).toEqual(['[ALERT] line 2']);
    expect(changes[1]!.apply).toMatchObject({ method: 'reload', ok: false, durationMs: 80 });
    expect(changes[2]!.cause).toEqual({ kind: 'lease' });
  });

  it('reports unreadable keys and values instead of dropping them', () => {
    const { changes } = interpretEvents(layout, [put('/services/Web!/x', '1.2.3.4:80', '30'), put('/services/web/a', 'not-an-address', '31')]);
    expect(changes.map((c) => [c.kind, c.problem])).toEqual([
      ['invalid', true],
      ['invalid', true],
    ]);
  });
});

function change(i: number, extra: Partial<FeedChange> = {}): FeedChange {
  return {
    revision: String(100 + i),
    kind: 'added',
    group: 'web',
    subject: `web/web-${i}`,
    what: `registered at 10.0.${i >> 8}.${i & 255}:8080 (weight 50, with a TTL)`,
    cause: { kind: 'switchyard', by: 'U0ONCALL', command: 'register' },
    ...extra,
  };
}
const items = (changes: FeedChange[]): FeedItem[] => changes.map((c) => ({ change: c, seenAt: 0 }));

function expectWithinLimits(m: FeedMessage): void {
  expect(m.blocks.length).toBeLessThanOrEqual(LIMITS.blocks);
  expect(m.text.length).toBeGreaterThan(0);
  expect(m.text.length).toBeLessThanOrEqual(LIMITS.fallbackText);
  for (const b of m.blocks) {
    const text = (b as { text?: { text: string } }).text?.text ?? '';
    expect(text.length).toBeLessThanOrEqual(LIMITS.sectionText);
    if (b.type === 'section') expect(text.trim()).not.toBe('');
  }
}

describe('feed messages in Block Kit', () => {
  it('lists a few changes in one message, escaped, with the user as a mention', () => {
    const [m, ...rest] = planFeedMessages(items([change(1, { what: 'moved from <!channel> & co to 10.0.0.1:80' })]));
    expect(rest).toEqual([]);
    expect(JSON.stringify(m!.blocks)).toContain('*web/web-1* moved from &lt;!channel&gt; &amp; co to 10.0.0.1:80 — by <@U0ONCALL> via `register`');
    expect(m!.text).toBe('web/web-1 moved from &lt;!channel&gt; &amp; co to 10.0.0.1:80 — by U0ONCALL via register');
    expect(m!.metadata).toEqual({ event_type: 'switchyard_feed', event_payload: { changes: 1, first_revision: '101', last_revision: '101' } });
  });

  it('keeps a burst of 1,000 instances within Block Kit limits: a summary, every change in the thread', () => {
    const burst = [
      ...Array.from({ length: 997 }, (_, i) => change(i)),
      ...[0, 1, 2].map((i) => change(2000 + i, { kind: 'removed', what: 'removed', cause: { kind: 'switchyard', by: 'docker', reason: 'container died' } })),
    ];
    const [summary, ...thread] = planFeedMessages(items(burst));
    expectWithinLimits(summary!);
    thread.forEach(expectWithinLimits);
    expect(JSON.stringify(summary!.blocks)).toContain('*web*: +997 instances by <@U0ONCALL> via `register`, −3 (container died) by docker');
    expect(summary!.text).toContain('1000 changes — details in thread');
    expect(summary!.metadata?.event_payload.changes).toBe(1000);
    const listed = thread.flatMap((m) => m.blocks.flatMap((b) => ((b as { text?: { text: string } }).text?.text ?? '').split('\n')));
    expect(listed.filter((l) => l.startsWith('*web/'))).toHaveLength(1000);
  });

  it('says what it could not list when even the thread is too small', () => {
    const huge = Array.from({ length: 12_000 }, (_, i) => change(i, { group: `svc-${i}`, subject: `svc-${i}/web-${i}` }));
    const [summary, ...thread] = planFeedMessages(items(huge));
    expectWithinLimits(summary!);
    thread.forEach(expectWithinLimits);
    expect(thread.length).toBeLessThanOrEqual(5);
    expect(JSON.stringify(summary!.blocks)).toMatch(/… \d+ more lines/);
    expect(JSON.stringify(thread.at(-1)!.blocks)).toMatch(/more lines not listed \(the counts in the summary are complete\)/);
    expect(summary!.metadata?.event_payload.changes).toBe(12_000);
  });
});

/** An outlet that records sends and fails the way a test says. */
class FakeOutlet implements FeedOutlet<string> {
  sent: { text: string; thread?: string; at: number }[] = [];
  failures: SendFailure[] = [];
  plan = (batch: FeedItem[]) => [`batch of ${batch.length}`, ...(batch.length > 2 ? [`details of ${batch.length}`] : [])];
  async send(m: string, thread: string | undefined) {
    const failure = this.failures.shift();
    this.sent.push({ text: m, ...(thread ? { thread } : {}), at: Date.now() });
    if (failure) throw Object.assign(new Error('refused'), { failure });
    return `ts-${this.sent.length}`;
  }
  classify = (err: unknown) => (err as { failure: SendFailure }).failure;
  describe = (m: string) => m;
}

describe('feed pacer', () => {
  const log = pino({ level: 'silent' });
  const event = (text: string): FeedItem => ({ event: { kind: 'test', text }, seenAt: Date.now() });

  it('coalesces a burst, paces posts, replies in the thread, honours Retry-After and retries failures', async () => {
    const outlet = new FakeOutlet();
    const pacer = new FeedPacer(outlet, log, { minIntervalMs: 100, quietMs: 20, maxWaitMs: 200, backoff: { minMs: 30, maxMs: 60 } });
    outlet.failures.push({ retryAfterMs: 150 }, { backoff: true }, { replaceWith: 'plain batch' });
    for (let i = 0; i < 5; i++) pacer.enqueue([event(`e${i}`)]);
    await pacer.idle();
    expect(outlet.sent.map((s) => s.text)).toEqual(['batch of 5', 'batch of 5', 'batch of 5', 'plain batch', 'details of 5']);
    expect(outlet.sent.at(-1)!.thread).toBe('ts-4');
    const gaps = outlet.sent.slice(1).map((s, i) => s.at - outlet.sent[i]!.at);
    expect(gaps[0]).toBeGreaterThanOrEqual(150 - 5); // Retry-After
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(100 - 5); // the channel's pace
  });

  it('stop() lets the batch in flight finish and reports what it leaves behind', async () => {
    const outlet = new FakeOutlet();
    const logged: string[] = [];
    const pacer = new FeedPacer(outlet, pino({ level: 'warn' }, { write: (s: string) => void logged.push(s) }), {
      minIntervalMs: 200,
      quietMs: 0,
      maxWaitMs: 0,
    });
    pacer.enqueue([event('first')]);
    await new Promise((r) => setTimeout(r, 20));
    pacer.enqueue([event('second')]);
    await pacer.stop();
    expect(outlet.sent.map((s) => s.text)).toEqual(['batch of 1']);
    expect(logged.some((l) => l.includes('feed event not posted before shutdown') && l.includes('second'))).toBe(true);
    expect(pacer.depth).toBe(0);
  });
});
