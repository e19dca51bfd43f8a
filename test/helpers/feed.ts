/**
 * In-process `serve` replicas for feed and confirmation tests: the real runtime (router,
 * etcd registry), the Slack feed sink with its pacer, the feed poster (election, position)
 * and optionally the Bolt HTTP receiver with the etcd seen-set — wired as src/serve.ts wires them, against the
 * Slack stand-in.
 */
import pino from 'pino';
import { EtcdConfirmationStore } from '../../src/adapters/etcd/confirmations.js';
import { EtcdDeduper } from '../../src/adapters/etcd/dedupe.js';
import { createSlackApp, type SlackApp } from '../../src/adapters/slack/app.js';
import { SlackApprovals } from '../../src/adapters/slack/approval.js';
import { createSlackClient, feedClientSettings } from '../../src/adapters/slack/client.js';
import { SlackFeedSink } from '../../src/adapters/slack/feed-sink.js';
import { loadConfig } from '../../src/config/load.js';
import type { Logger } from '../../src/core/log.js';
import type { FeedService } from '../../src/feed/service.js';
import { startFeedPoster } from '../../src/app/feed.js';
import { feedActionSources } from '../../src/app/feed-actions.js';
import { buildRuntime, type Runtime } from '../../src/app/runtime.js';
import type { SlackCall, SlackStandIn } from './slack.js';

export const FEED_CHANNEL = 'C0FEED';
export const SIGNING_SECRET = 'feed-test-signing-secret';

export function testLog(): Logger {
  // LOG_LEVEL=debug npx vitest … shows what the replicas do.
  const level = process.env.TEST_LOG_LEVEL;
  // The audit trail ignores the level by design: send it nowhere too.
  return level ? pino({ level }, pino.destination(2)) : pino({ level: 'silent' }, { write: () => {} });
}

export interface ReplicaOptions {
  configPath: string;
  standIn: SlackStandIn;
  /** Token of this replica's feed client: tells in the stand-in who posted. */
  token?: string;
  /** Override etcd endpoints (e.g. a proxy that can cut this replica off). */
  endpoints?: string[];
  ttlSec?: number;
  /** Start the feed poster (default true). */
  feed?: boolean;
  /** Start the Bolt HTTP receiver with confirmations. */
  slack?: boolean;
  /** With `slack`: Socket Mode with this app-level token instead of the HTTP receiver. */
  appToken?: string;
  /** Socket Mode ping timeout, also the reconnect delay step (default 5000 ms). */
  socketPingTimeoutMs?: number;
  confirmTtlMs?: number;
  /** With `slack`: how often the approval expiry sweep runs (default 5 s). */
  approvalSweepMs?: number;
  log?: Logger;
}

export interface Replica {
  runtime: Runtime;
  sink: SlackFeedSink;
  poster: FeedService | undefined;
  slack: SlackApp | undefined;
  /** …/slack/events of the receiver, when started over HTTP. */
  events: string;
  /** http://127.0.0.1:PORT of the bot's listener (/healthz, /metrics), when `slack`. */
  base: string;
  stop(): Promise<void>;
}

export async function startReplica(o: ReplicaOptions): Promise<Replica> {
  const log = o.log ?? testLog();
  const config = await loadConfig(o.configPath, {});
  if (o.endpoints) config.etcd.endpoints = o.endpoints;
  const token = o.token ?? 'xoxb-feed';
  const sink = new SlackFeedSink({ client: createSlackClient(token, feedClientSettings(o.standIn.apiUrl), log), channel: FEED_CHANNEL, log });
  const runtime = await buildRuntime({ config, secrets: {}, log, feed: sink });
  sink.instrument(runtime.metrics);
  const poster =
    o.feed === false
      ? undefined
      : startFeedPoster({ registry: runtime.registry, pacer: sink.pacer, log, metrics: runtime.metrics, ttlSec: o.ttlSec ?? 2, replica: token });
  let slack: SlackApp | undefined;
  let approvals: SlackApprovals | undefined;
  let events = '';
  let base = '';
  if (o.slack) {
    approvals = new SlackApprovals({
      gate: runtime.approvals,
      client: createSlackClient('xoxb-bot', { apiUrl: o.standIn.apiUrl, retryConfig: { retries: 0 } }, log),
      log,
      ...(o.approvalSweepMs !== undefined ? { sweepMs: o.approvalSweepMs } : {}),
    }).start();
    slack = createSlackApp({
      dispatcher: runtime.router,
      log,
      botToken: 'xoxb-bot',
      ...(o.appToken ? { appToken: o.appToken } : { signingSecret: SIGNING_SECRET }),
      ...(o.socketPingTimeoutMs !== undefined ? { socketPingTimeoutMs: o.socketPingTimeoutMs } : {}),
      apiUrl: o.standIn.apiUrl,
      port: 0,
      host: '127.0.0.1',
      metricsRegistry: runtime.metrics.registry,
      confirmations: new EtcdConfirmationStore(runtime.registry),
      approvals,
      feedActions: feedActionSources(runtime),
      deduper: new EtcdDeduper(runtime.registry),
      ...(o.confirmTtlMs !== undefined ? { confirmTtlMs: o.confirmTtlMs } : {}),
      health: async () => ({ ok: true }),
    });
    const { port } = await slack.start();
    base = `http://127.0.0.1:${port}`;
    events = o.appToken ? '' : `${base}/slack/events`;
  }
  let stopped = false;
  return {
    runtime,
    sink,
    poster,
    slack,
    events,
    base,
    async stop() {
      if (stopped) return;
      stopped = true;
      await slack?.stop();
      await approvals?.stop();
      await poster?.stop();
      await sink.stop();
      await runtime.close();
    },
  };
}

/** Poll until `check` holds; fails with `what` after the deadline. */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Feed posts (chat.postMessage to the feed channel), in arrival order. */
export function feedPosts(standIn: SlackStandIn): SlackCall[] {
  return standIn.api('chat.postMessage').filter((c) => c.body.channel === FEED_CHANNEL);
}

/** The mrkdwn of a message's section blocks (what a reader sees, without the fallback). */
export function sectionText(call: SlackCall): string {
  const blocks = (call.body.blocks ?? []) as { type: string; text?: { text: string } }[];
  return blocks
    .filter((b) => b.type === 'section')
    .map((b) => b.text?.text ?? '')
    .join('\n');
}

/** How many changes a top-level feed message reports (its metadata). */
export function reportedChanges(call: SlackCall): number {
  return Number(call.body.metadata?.event_payload?.changes ?? 0);
}

/** Every line that lists one change: inline messages and thread details (not summaries). */
export function changeLines(posts: SlackCall[]): string[] {
  return posts
    .filter((p) => p.body.thread_ts !== undefined || reportedChanges(p) <= 8)
    .flatMap((p) => sectionText(p).split('\n'))
    .filter((l) => l.trim() !== '');
}

/** Times each name appears among the change lines. */
export function occurrences(lines: string[], names: string[]): Map<string, number> {
  const counts = new Map(names.map((n) => [n, 0]));
  for (const line of lines) {
    const m = /^(?::x: )?\*([^*]+)\*/.exec(line);
    const subject = m?.[1];
    if (subject !== undefined && counts.has(subject)) counts.set(subject, counts.get(subject)! + 1);
  }
  return counts;
}
