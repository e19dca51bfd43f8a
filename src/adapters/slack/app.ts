import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { App, HTTPReceiver, type RespondFn } from '@slack/bolt';
import { Counter, type Registry } from 'prom-client';
import { DM, type Caller } from '../../core/caller.js';
import type { Dispatcher } from '../../core/dispatch.js';
import type { Logger } from '../../core/log.js';
import { boltLogger } from './bolt-logger.js';
import { slackClientOptions, type RetryOptions, type WebClient } from './client.js';
import { SlackConfirmations, type ConfirmationStore } from './confirm.js';
import { MemoryDeduper, type EventDeduper } from './dedupe.js';
import { slashChannelResolver } from './dm.js';
import { escapeMrkdwn } from './mrkdwn.js';
import { ProgressReply, type Show } from './progress.js';
import { closeServer, listenRoutes, opsRoutes, type Health } from './routes.js';
import { commandName, runCommand } from './run.js';
import { commandFromSlash, messageCommand, pickMessageEvent } from './text.js';

export interface SlackAppOptions {
  dispatcher: Dispatcher;
  log: Logger;
  botToken: string;
  signingSecret: string;
  /** Set → Socket Mode (no public endpoint); /healthz and /metrics are still served on `port`. */
  appToken?: string;
  /** SLACK_API_URL. */
  apiUrl?: string;
  /** 0 picks a free port; start() reports the one bound. */
  port: number;
  host?: string;
  metricsRegistry: Registry;
  health: () => Promise<Health>;
  /** Default: in-memory, which is right for a single replica. */
  deduper?: EventDeduper;
  /** Default '/ops'. */
  slashCommand?: string;
  retryConfig?: RetryOptions;
  /**
   * Pending confirmations (etcd, shared by replicas): destructive commands then ask with
   * buttons instead of refusing; without it, --yes is the only way.
   */
  confirmations?: ConfirmationStore;
  /** How long the buttons stay valid. Default 2 minutes. */
  confirmTtlMs?: number;
}

export interface SlackApp {
  start(): Promise<{ port: number }>;
  /** Stops listening, then waits for commands already running to deliver their replies. */
  stop(): Promise<void>;
  /** The bot's Web API client (same base URL and retry policy as the handlers use). */
  readonly client: WebClient;
}

/** response_url takes five posts; the final reply needs one and one is kept spare. */
const SLASH_PROGRESS_POSTS = 3;

export function createSlackApp(opts: SlackAppOptions): SlackApp {
  const log = opts.log.child({ component: 'slack' });
  const deduper = opts.deduper ?? new MemoryDeduper();
  const duplicates = counter(opts.metricsRegistry, 'switchyard_slack_duplicate_events_total', 'Events API redeliveries dropped by event_id');
  const routes = opsRoutes({ health: opts.health, metricsRegistry: opts.metricsRegistry, log });
  const socketMode = !!opts.appToken;

  const app = new App({
    token: opts.botToken,
    logger: boltLogger(opts.log.child({ component: 'bolt' })),
    clientOptions: slackClientOptions({ apiUrl: opts.apiUrl, retryConfig: opts.retryConfig }, opts.log.child({ component: 'slack-web-api' })),
    // auth.test runs in start() (app.init) where a failure can be awaited; run from the
    // constructor it would be an unawaited promise and a bad token an unhandled rejection.
    deferInitialization: true,
    // No conversation state is used; Bolt's default store would keep per-channel timers.
    convoStore: false,
    ...(socketMode
      ? { socketMode: true, appToken: opts.appToken }
      : {
          receiver: new HTTPReceiver({
            signingSecret: opts.signingSecret,
            endpoints: '/slack/events',
            customRoutes: routes,
            logger: boltLogger(opts.log.child({ component: 'bolt-http' })),
          }),
        }),
  });

  app.error(async (err) => {
    log.error({ err }, 'unhandled error in a Slack handler');
  });

  // Registered after Bolt's ignoreSelf, before every listener: a redelivered event stops here.
  app.use(async ({ body, context, next }) => {
    const eventId = (body as { event_id?: unknown }).event_id;
    if (typeof eventId === 'string') {
      let dup: boolean;
      try {
        dup = await deduper.seen(eventId);
      } catch (err) {
        // Unsure whether it ran already: not running it is the safe side of "at most once".
        log.error({ err, eventId }, 'event de-duplication failed; event dropped');
        return;
      }
      if (dup) {
        duplicates.inc();
        log.info({ eventId, retryNum: context.retryNum, retryReason: context.retryReason }, 'duplicate event delivery dropped');
        return;
      }
    }
    await next();
  });

  const inflight = new Set<Promise<void>>();
  const track = (p: Promise<void>): Promise<void> => {
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
    return p;
  };
  const resolveSlashChannel = slashChannelResolver(app.client, log);
  const confirmations = opts.confirmations
    ? new SlackConfirmations({
        store: opts.confirmations,
        dispatcher: opts.dispatcher,
        log,
        metricsRegistry: opts.metricsRegistry,
        ...(opts.confirmTtlMs !== undefined ? { ttlMs: opts.confirmTtlMs } : {}),
      })
    : undefined;
  confirmations?.register(app, track);
  const confirm = confirmations?.request;

  app.command(opts.slashCommand ?? '/ops', async ({ command, ack, respond }) => {
    const text = commandFromSlash(command.text);
    // Slack wants the ack within 3 s; everything slow happens after it.
    await ack(text ? { response_type: 'ephemeral', text: `running \`${escapeMrkdwn(clip(text, 200))}\`…` } : undefined);
    // Yield to the event loop so requests that arrived in the same burst are acked before
    // this one's work starts: acks wait on nothing but CPU, commands wait on etcd anyway.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const requestId = command.trigger_id || randomUUID();
    const reqLog = log.child({ requestId, user: command.user_id, command: commandName(text), via: 'slash' });
    const caller: Caller = {
      userId: command.user_id,
      channel: await resolveSlashChannel(command.channel_id, command.user_id),
      source: 'slack',
    };
    const reply = new ProgressReply(respondSurface(respond), reqLog, SLASH_PROGRESS_POSTS);
    await track(runCommand({ dispatcher: opts.dispatcher, text, caller, requestId, reply, log: reqLog, ...(confirm ? { confirm } : {}) }));
  });

  // DMs with the bot and @mentions in channels share one path; messageCommand() drops bot
  // messages, our own messages, edits and other subtypes, and non-DM message events.
  const onMessage = async ({ event, body, context, client }: MessageArgs): Promise<void> => {
    const ev = pickMessageEvent(event);
    const cmd = messageCommand(ev, { botUserId: context.botUserId, botId: context.botId });
    if (!cmd) return;
    const mention = ev.type === 'app_mention';
    const eventId = (body as { event_id?: unknown }).event_id;
    const requestId = typeof eventId === 'string' ? eventId : randomUUID();
    const reqLog = log.child({ requestId, user: cmd.userId, command: commandName(cmd.text), via: mention ? 'mention' : 'dm' });
    // The ACL speaks of 'dm' for the bot's own DM; a mention answers in the thread it started.
    const caller: Caller = { userId: cmd.userId, channel: mention ? cmd.channel : DM, source: 'slack' };
    const threadTs = mention ? (cmd.threadTs ?? cmd.ts) : cmd.threadTs;
    const reply = new ProgressReply(chatSurface(client, cmd.channel, threadTs, reqLog), reqLog);
    await track(runCommand({ dispatcher: opts.dispatcher, text: cmd.text, caller, requestId, reply, log: reqLog, ...(confirm ? { confirm } : {}) }));
  };
  app.event('message', onMessage);
  app.event('app_mention', onMessage);

  let routeServer: Server | undefined;
  let started = false;
  return {
    client: app.client,
    async start() {
      // auth.test: fails here on a bad token or an unreachable API, and gives ignoreSelf
      // and mention stripping our bot user ID.
      await app.init();
      if (socketMode) {
        await app.start();
        try {
          const bound = await listenRoutes(routes, opts.port, opts.host);
          routeServer = bound.server;
          started = true;
          log.info({ port: bound.port, mode: 'socket' }, 'Slack app started');
          return { port: bound.port };
        } catch (err) {
          await app.stop();
          throw err;
        }
      }
      const server = await app.start(opts.host ? { port: opts.port, host: opts.host } : opts.port);
      started = true;
      const port = (server.address() as AddressInfo).port;
      log.info({ port, mode: 'http' }, 'Slack app listening');
      return { port };
    },
    async stop() {
      if (!started) return;
      started = false;
      await app.stop();
      if (routeServer) await closeServer(routeServer);
      routeServer = undefined;
      await Promise.allSettled([...inflight]);
    },
  };
}

interface MessageArgs {
  event: unknown;
  body: unknown;
  context: { botUserId?: string; botId?: string };
  client: WebClient;
}

/** Slash commands: every update replaces the ephemeral "running …" message. */
function respondSurface(respond: RespondFn): Show {
  return async (msg) => {
    await respond({ response_type: 'ephemeral', replace_original: true, ...msg });
  };
}

/**
 * DMs and mentions: post once, then edit that message. If the edit is refused (message
 * deleted, edit window) a fresh message is posted, so the result is never lost behind a
 * stale progress line.
 */
function chatSurface(client: WebClient, channel: string, threadTs: string | undefined, log: Logger): Show {
  let ts: string | undefined;
  return async (msg) => {
    if (ts !== undefined) {
      try {
        await client.chat.update({ channel, ts, ...msg });
        return;
      } catch (err) {
        log.warn({ err, channel, ts }, 'could not update the reply message; posting a new one');
      }
    }
    const res = await client.chat.postMessage({
      channel,
      ...(threadTs !== undefined ? { thread_ts: threadTs } : {}),
      // Replies are full of host:port strings; link previews of them are noise.
      unfurl_links: false,
      unfurl_media: false,
      ...msg,
    });
    ts = res.ts;
  };
}

function counter(registry: Registry, name: string, help: string): Counter {
  const existing = registry.getSingleMetric(name);
  return existing instanceof Counter ? existing : new Counter({ name, help, registers: [registry] });
}

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}
