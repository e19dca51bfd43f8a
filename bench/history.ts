/**
 * Issue-12 benchmark: `history` over 100,000 retained revisions in a private etcd — one page
 * (50 rows, newest first) unfiltered and for one service out of ten, `status`'s last three
 * changes, and one trimming pass by count.
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { EtcdHistory } from '../src/adapters/etcd/history.js';
import { createEtcdRegistry } from '../src/adapters/etcd/registry.js';
import { configSchema } from '../src/config/schema.js';
import type { FeedChange } from '../src/feed/types.js';
import { startEtcd } from '../test/helpers/etcd-server.js';
import { fmt, summarize, writeSection } from './lib.js';

const ENTRIES = Number(process.env.HISTORY_BENCH_ENTRIES ?? 100_000);
const SAMPLES = Number(process.env.HISTORY_BENCH_SAMPLES ?? 200);
const SERVICES = 10;
const BATCH = 1000;

function change(rev: number): FeedChange {
  const service = `svc-${rev % SERVICES}`;
  return {
    revision: String(rev),
    kind: 'added',
    group: service,
    subject: `${service}/i-${rev}`,
    what: `registered at 10.${(rev >> 16) & 255}.${(rev >> 8) & 255}.${rev & 255}:80`,
    cause: { kind: 'switchyard', by: 'U0BENCH', command: 'register', at: new Date(Date.now() - (ENTRIES - rev) * 1000).toISOString() },
  };
}

async function time(fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
}

async function main() {
  const loadBefore = loadavg()[0]!;
  const etcd = await startEtcd();
  const config = configSchema.parse({
    etcd: { endpoints: [etcd.endpoint], commandTimeout: '30s' },
    registry: { prefix: '/b/services', switchyardPrefix: '/b/switchyard' },
  });
  const registry = createEtcdRegistry(config, { log: pino({ level: 'silent' }) });
  const history = new EtcdHistory(registry);
  try {
    const fillStart = performance.now();
    for (let from = 1; from <= ENTRIES; from += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, ENTRIES - from + 1) }, (_, i) => change(from + i));
      await history.record(batch, new Date());
    }
    const fillMs = performance.now() - fillStart;
    // Synthetic revisions run to ENTRIES while etcd's own is ~ENTRIES/BATCH: a page "from now"
    // is asked as --before ENTRIES+1, the same window reads a real newest page makes.
    const NOW = String(ENTRIES + 1);
    const firstPage = await history.list({ limit: 50, beforeRevision: NOW });
    if (firstPage.entries.length !== 50 || firstPage.entries[0]!.revision !== String(ENTRIES)) throw new Error('history did not list the newest 50 entries');

    const page = summarize(await time(() => history.list({ limit: 50, beforeRevision: NOW })));
    const deepPage = summarize(await time(() => history.list({ limit: 50, beforeRevision: String(ENTRIES / 2) })));
    const service = summarize(await time(() => history.list({ service: 'svc-7', limit: 50, beforeRevision: NOW })));
    const last3 = summarize(await time(() => history.list({ service: 'svc-3', limit: 3, beforeRevision: NOW })));
    const trimStart = performance.now();
    const trimmed = await history.trim({ retentionMs: 365 * 86_400_000, maxEntries: ENTRIES - 1000 });
    const trimMs = performance.now() - trimStart;
    const loadAfter = loadavg()[0]!;

    const row = (metric: string, s: ReturnType<typeof summarize>, target?: number) => ({
      metric,
      value: `p50 ${fmt(s.p50)} ms, p99 ${fmt(s.p99)} ms, max ${fmt(s.max)} ms (n=${s.n})`,
      target: target === undefined ? '—' : `p99 ≤ ${target} ms`,
      pass: target === undefined ? undefined : s.p99 <= target,
    });
    await writeSection(
      '12-history',
      `Change history (${ENTRIES.toLocaleString('en')} retained revisions)`,
      [
        row('`history --limit 50`: newest page', page, 100),
        row('`history --limit 50 --before <mid>`: a page half-way back', deepPage, 100),
        row('`history svc-7 --limit 50` (1 service in 10)', service, 100),
        row('`status <service>`: last three changes', last3),
        { metric: `trim ${trimmed.toLocaleString('en')} revisions by count`, value: `${fmt(trimMs)} ms`, target: '—', pass: undefined },
        { metric: `fill ${ENTRIES.toLocaleString('en')} revisions (${BATCH} per record call)`, value: `${fmt(fillMs / 1000)} s`, target: '—', pass: undefined },
      ],
      [
        `private etcd (bench/history.ts); load average ${fmt(loadBefore, 2)} before, ${fmt(loadAfter, 2)} after — the machine is shared, figures under load are upper bounds.`,
        'A page reads ascending windows of revisions below its start, newest first (etcd sorts a descending range whole, so none is asked for); a real newest page adds one small read for the current revision.',
        'Not measured here: feed lag while trimming (the recorder and the feed posters are separate elected services with separate watches).',
      ],
    );
    console.log(JSON.stringify({ page, deepPage, service, last3, trimMs, fillMs }));
  } finally {
    await registry.close();
    await etcd.dispose();
  }
}

await main();
