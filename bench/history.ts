/**
 * Issue-12 benchmark: `history` over 100,000 retained revisions in a private etcd — one page
 * (50 rows, newest first) unfiltered and for one service out of ten, `status`'s last three
 * changes, one trimming pass by count — and the feed's lag (registry write → change handed
 * to the feed's outlet) without and with retention trimming running at the same time.
 */
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { EtcdHistory } from '../src/adapters/etcd/history.js';
import { createEtcdRegistry, type EtcdRegistry } from '../src/adapters/etcd/registry.js';
import { startFeedPoster } from '../src/app/feed.js';
import { configSchema } from '../src/config/schema.js';
import { FeedPacer, type FeedOutlet } from '../src/feed/pacer.js';
import type { FeedChange, FeedItem } from '../src/feed/types.js';
import { startEtcd } from '../test/helpers/etcd-server.js';
import { fmt, summarize, writeSection } from './lib.js';

const ENTRIES = Number(process.env.HISTORY_BENCH_ENTRIES ?? 100_000);
const SAMPLES = Number(process.env.HISTORY_BENCH_SAMPLES ?? 200);
const SERVICES = 10;
const BATCH = 1000;
/** Registry writes timed per feed-lag round, one every LAG_GAP_MS. */
const LAG_WRITES = Number(process.env.HISTORY_BENCH_LAG_WRITES ?? 300);
const LAG_GAP_MS = 10;
/** The trimmed round's retention: all but the newest ~10,000 entries are old (a backlog). */
const BACKLOG_KEEP_SEC = 10_000;

/**
 * The #ops feed's own path (watch from the saved position, attribution, the pacer, the
 * position saved after each batch), with an outlet that notes when each change reaches it
 * in place of Slack, and no pacing: what is timed is etcd's side, the part trimming shares.
 */
interface Lag {
  /** Write start → change handed to the outlet. */
  endToEnd: number[];
  /** The registry write itself. */
  write: number[];
  /** Write done → the feed's watch delivered it. */
  watch: number[];
  /** Delivered → handed to the outlet: what switchyard_feed_lag_seconds measures. */
  queue: number[];
}

function feedProbe(registry: EtcdRegistry) {
  const arrived = new Map<string, { seenAt: number; sentAt: number }>();
  const outlet: FeedOutlet<FeedItem[]> = {
    plan: (items) => [items],
    send: async (items) => {
      const sentAt = Date.now();
      for (const i of items) if (i.change) arrived.set(i.change.subject, { seenAt: i.seenAt, sentAt });
      return undefined;
    },
    classify: () => ({ backoff: true }),
    describe: (items) => `${items.length} items`,
  };
  const log = pino({ level: 'silent' });
  const pacer = new FeedPacer(outlet, log, { minIntervalMs: 0, quietMs: 0, maxWaitMs: 0 });
  const poster = startFeedPoster({ registry, pacer, log, replica: 'bench', ttlSec: 5 });
  return {
    poster,
    /** Write LAG_WRITES registrations one by one; where each one's time went (ms, Date.now resolution). */
    async round(tag: string): Promise<Lag> {
      const writes = new Map<string, { start: number; done: number }>();
      for (let i = 0; i < LAG_WRITES; i++) {
        const start = Date.now();
        await registry.register('lag', `${tag}-${i}`, `10.9.${i >> 8}.${i & 255}:80`, { by: 'U0BENCH' });
        writes.set(`lag/${tag}-${i}`, { start, done: Date.now() });
        await sleep(LAG_GAP_MS);
      }
      const deadline = Date.now() + 60_000;
      while ([...writes.keys()].some((s) => !arrived.has(s))) {
        if (Date.now() > deadline) throw new Error(`the feed did not report every ${tag} write within 60 s`);
        await sleep(20);
      }
      const lag: Lag = { endToEnd: [], write: [], watch: [], queue: [] };
      for (const [s, w] of writes) {
        const a = arrived.get(s)!;
        lag.endToEnd.push(a.sentAt - w.start);
        lag.write.push(w.done - w.start);
        lag.watch.push(Math.max(0, a.seenAt - w.done));
        lag.queue.push(a.sentAt - a.seenAt);
      }
      return lag;
    },
    async stop() {
      await poster.stop();
    },
  };
}

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

    // Feed lag: quiet, while trimming by age pass after pass, quiet again (the spread of the
    // two quiet rounds is the noise the trimmed round is judged against).
    const probe = feedProbe(registry);
    const empty: Lag = { endToEnd: [], write: [], watch: [], queue: [] };
    const lag = { quiet1: empty, trimming: empty, quiet2: empty };
    let trimPasses = 0;
    let trimDeleted = 0;
    try {
      const deadline = Date.now() + 30_000;
      while (!probe.poster.watching) {
        if (Date.now() > deadline) throw new Error('the feed poster did not start watching');
        await sleep(20);
      }
      await probe.round('warmup');
      lag.quiet1 = await probe.round('quiet1');
      // One trim pass over a backlog, as the recorder runs it: entries are one second apart,
      // so a retention of 10,000 s leaves ~10,000 and makes the other ~89,000 old. It goes
      // on (paced) for the whole round and is stopped, like a recorder stopping, at its end.
      const stopTrim = new AbortController();
      const trimmer = history.trim({ retentionMs: BACKLOG_KEEP_SEC * 1000, maxEntries: ENTRIES }, Date.now(), stopTrim.signal).then((n) => {
        trimDeleted = n;
        trimPasses++;
      });
      try {
        lag.trimming = await probe.round('trimming');
      } finally {
        stopTrim.abort();
        await trimmer;
      }
      lag.quiet2 = await probe.round('quiet2');
    } finally {
      await probe.stop();
    }
    const quiet1 = summarize(lag.quiet1.queue);
    const quiet2 = summarize(lag.quiet2.queue);
    const trimmedLag = summarize(lag.trimming.queue);
    const noise = Math.abs(quiet1.p99 - quiet2.p99);
    const quietP99 = Math.max(quiet1.p99, quiet2.p99);
    const parts = (l: Lag) =>
      (['write', 'watch', 'endToEnd'] as const)
        .map((k) => `${k === 'endToEnd' ? 'end to end' : k} p50/p99 ${fmt(summarize(l[k]).p50, 0)}/${fmt(summarize(l[k]).p99, 0)}`)
        .join(', ');
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
        row('feed lag (change delivered → feed outlet, as switchyard_feed_lag_seconds), quiet', quiet1),
        {
          ...row(`feed lag while trim() works through a backlog (${trimDeleted.toLocaleString('en')} revisions deleted meanwhile)`, trimmedLag),
          target: 'p99 within noise of quiet',
          // "Within noise": no worse than the slower quiet round plus twice the quiet rounds' spread (and 5 ms for timer jitter).
          pass: trimmedLag.p99 <= quietP99 + 2 * noise + 5,
        },
        row('feed lag, quiet again', quiet2),
        { metric: 'before the feed, quiet (ms)', value: parts(lag.quiet1), target: '—', pass: undefined },
        { metric: 'before the feed, while trimming (ms)', value: parts(lag.trimming), target: '—', pass: undefined },
        { metric: 'before the feed, quiet again (ms)', value: parts(lag.quiet2), target: '—', pass: undefined },
        { metric: `fill ${ENTRIES.toLocaleString('en')} revisions (${BATCH} per record call)`, value: `${fmt(fillMs / 1000)} s`, target: '—', pass: undefined },
      ],
      [
        `private etcd (bench/history.ts); load average ${fmt(loadBefore, 2)} before, ${fmt(loadAfter, 2)} after — the machine is shared, figures under load are upper bounds.`,
        'A page reads ascending windows of revisions below its start, newest first (etcd sorts a descending range whole, so none is asked for); a real newest page adds one small read for the current revision.',
        `Feed lag: the feed's own poster (election, watch from the saved position, attribution, position saved per batch) with an outlet that records arrival instead of posting, unpaced (Slack's 1 message/s would hide etcd's share); ${LAG_WRITES} registrations per round, one every ${LAG_GAP_MS} ms. The target row is the feed's own lag (delivered by the watch → outlet); the rows "before the feed" split the rest: the registry write, and write done → delivered by the watch (etcd's share, which trimming also loads). Trimming: one pass of the recorder's trim() over a backlog of ~89,000 old entries, deleting in paced chunks (100 keys, 100 ms apart) for the whole trimmed round, then stopped; in steady state a pass deletes what aged out in the last minute. Noise: the two quiet rounds differ by ${fmt(noise)} ms at p99.`,
      ],
    );
    console.log(
      JSON.stringify({
        page,
        deepPage,
        service,
        last3,
        trimMs,
        fillMs,
        quiet1,
        trimmedLag,
        quiet2,
        trimPasses,
        trimDeleted,
        parts: [parts(lag.quiet1), parts(lag.trimming), parts(lag.quiet2)],
      }),
    );
  } finally {
    await registry.close();
    await etcd.dispose();
  }
}

await main();
