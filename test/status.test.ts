import { describe, expect, it } from 'vitest';
import { DETAIL_MAX_INSTANCES, DETAIL_MAX_SERVICES, PAGE_SIZE } from '../plugins/status.js';
import { LIMITS, renderReply } from '../src/adapters/slack/render.js';
import { replyToText, type Reply } from '../src/core/reply.js';
import { shellCaller, testRouter } from './helpers/core.js';
import type { MemoryRegistry } from './helpers/memory-registry.js';

/** `count` instances spread round-robin over `services` services named svc-<n>. */
async function fill(registry: MemoryRegistry, count: number, services: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await registry.register(`svc-${i % services}`, `i-${String(i).padStart(5, '0')}`, `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}:80`, { by: 'U1' });
  }
}

function table(reply: Reply, index = 0) {
  const t = reply.tables?.[index];
  if (!t) throw new Error(`no table ${index} in ${replyToText(reply)}`);
  return t;
}

/** The Slack message for a reply, with the checks that it fits and nothing was cut. */
function fitsSlackWhole(reply: Reply): void {
  const msg = renderReply(reply);
  expect(msg.blocks.length).toBeLessThanOrEqual(LIMITS.blocks);
  expect(msg.text.length).toBeLessThanOrEqual(LIMITS.fallbackText);
  // The renderer's "… N more rows" notice is a context block: none means every row is shown.
  expect(msg.blocks.filter((b) => b.type === 'context')).toEqual([]);
}

describe('status on a large registry', () => {
  it('without a service shows one row per service with its counts, and fits one Slack message', async () => {
    const { router, registry } = testRouter();
    await fill(registry, 10_000, 100);
    await registry.setState('svc-7', 'i-00007', 'drain', 'U2');
    await registry.setState('svc-7', 'i-00107', 'maint', 'U2');
    await registry.setDesired('svc-7', 100, 'U1');

    const reply = await router.dispatch({ text: 'status', caller: shellCaller() });
    expect(reply).toMatchObject({ ok: true, summary: expect.stringContaining('100 service(s), 10000 instance(s)') });
    const { title, table: services } = table(reply);
    expect(title).toBe('services 1–100 of 100 (page 1 of 1)');
    expect(services.header).toEqual(['service', 'instances', 'ready', 'drain', 'maint', 'desired']);
    expect(services.rows).toHaveLength(100);
    expect(services.rows.find((r) => r[0] === 'svc-7')).toEqual(['svc-7', '100', '98', '1', '1', '100']);
    expect(services.rows.find((r) => r[0] === 'svc-8')).toEqual(['svc-8', '100', '100', '0', '0', '-']);
    const text = replyToText(reply);
    expect(text).toContain('`status <service>` lists');
    expect(text).not.toMatch(/\bi-00007\b/);
    fitsSlackWhole(reply);
  });

  it('lists every instance while the registry is small, and switches to the summary just past the limits', async () => {
    const small = testRouter();
    await fill(small.registry, DETAIL_MAX_INSTANCES, 4);
    const detailed = await small.router.dispatch({ text: 'status', caller: shellCaller() });
    expect(detailed.tables?.map((t) => t.title)).toEqual([
      'svc-0: 25 instances, 25 ready',
      'svc-1: 25 instances, 25 ready',
      'svc-2: 25 instances, 25 ready',
      'svc-3: 25 instances, 25 ready',
    ]);
    fitsSlackWhole(detailed);

    await small.registry.register('svc-0', 'one-more', '10.9.9.9:80', { by: 'U1' });
    expect(table(await small.router.dispatch({ text: 'status', caller: shellCaller() })).title).toMatch(/^services /);

    const many = testRouter();
    await fill(many.registry, DETAIL_MAX_SERVICES + 1, DETAIL_MAX_SERVICES + 1);
    const summary = table(await many.router.dispatch({ text: 'status', caller: shellCaller() }));
    expect(summary.table.rows).toHaveLength(DETAIL_MAX_SERVICES + 1);
  });

  it('pages the services when there are more than a page of them', async () => {
    const { router, registry } = testRouter();
    await fill(registry, 2 * PAGE_SIZE + 50, 2 * PAGE_SIZE + 50);
    const first = await router.dispatch({ text: 'status', caller: shellCaller() });
    expect(table(first).table.rows).toHaveLength(PAGE_SIZE);
    expect(first.details).toContain('next page: `status --page 2`');
    const last = await router.dispatch({ text: 'status --page 3', caller: shellCaller() });
    expect(table(last).title).toBe('services 201–250 of 250 (page 3 of 3)');
    expect(table(last).table.rows).toHaveLength(50);
    expect(last.details?.some((d) => d.startsWith('next page'))).toBe(false);
    fitsSlackWhole(first);
  });

  it('status <service> pages its instances in order and refuses a page past the end', async () => {
    const { router, registry } = testRouter();
    await fill(registry, 2 * PAGE_SIZE + 50, 1);

    const first = await router.dispatch({ text: 'status svc-0', caller: shellCaller() });
    const t1 = table(first);
    expect(t1.title).toBe('svc-0: 250 instances, 250 ready · rows 1–100 of 250 (page 1 of 3)');
    expect(t1.table.rows).toHaveLength(PAGE_SIZE);
    expect(t1.table.rows[0]?.[0]).toBe('i-00000');
    expect(first.details).toContain('next page: `status svc-0 --page 2`');
    fitsSlackWhole(first);

    const second = table(await router.dispatch({ text: 'status svc-0 --page 2', caller: shellCaller() }));
    expect(second.table.rows[0]?.[0]).toBe('i-00100');

    const third = await router.dispatch({ text: 'status svc-0 --page 3', caller: shellCaller() });
    expect(table(third).table.rows.map((r) => r[0])).toEqual(Array.from({ length: 50 }, (_, i) => `i-${String(200 + i).padStart(5, '0')}`));
    expect(third.details ?? []).not.toContainEqual(expect.stringContaining('next page'));

    const past = await router.dispatch({ text: 'status svc-0 --page 4', caller: shellCaller() });
    expect(past).toMatchObject({ ok: false, code: 'E_BAD_ARGS' });
    expect(past.summary).toContain('`status svc-0 --page 3`');
  });

  it('refuses a page that is not a positive whole number, and page 2 of a small listing', async () => {
    const { router, registry } = testRouter();
    await fill(registry, 3, 1);
    for (const bad of ['status svc-0 --page 0', 'status --page two', 'status --page 2']) {
      expect(await router.dispatch({ text: bad, caller: shellCaller() }), bad).toMatchObject({ ok: false, code: 'E_BAD_ARGS' });
    }
  });

  it('names at most 20 unreadable registry entries and counts the rest', async () => {
    const { router, registry } = testRouter();
    await fill(registry, 2, 1);
    const list = registry.list.bind(registry);
    registry.list = async (service) => {
      const listing = await list(service);
      const problems = Array.from({ length: 30 }, (_, i) => ({ key: `/services/svc-0/bad-${i}`, problem: 'not host:port' }));
      return { ...listing, problems };
    };
    const reply = await router.dispatch({ text: 'status', caller: shellCaller() });
    const unreadable = reply.details?.filter((d) => d.startsWith('unreadable registry entry')) ?? [];
    expect(unreadable).toHaveLength(20);
    expect(reply.details).toContain('… and 10 more unreadable registry entries');
  });
});
