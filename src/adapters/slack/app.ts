import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { App, HTTPReceiver, SocketModeReceiver, type RespondFn } from '@slack/bolt';
import type { Registry } from 'prom-client';
import { DM, type Caller } from '../../core/caller.js';
import type { Dispatcher } from '../../core/dispatch.js';
import { SwitchyardError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { settledWithin } from '../../core/shutdown.js';
import { AckBacklog, ackOrCarryOn } from './ack.js';
import { boltLogger } from './bolt-logger.js';
import { createSlackClient, slackClientOptions, type RetryOptions, type WebClient } from './client.js';
import { SlackConfirmations, type ConfirmationStore } from './confirm.js';
import type { SlackApprovals } from './approval.js';
import { registerFeedActions, type FeedActionSources } from './feed-actions.js';
import { MemoryDeduper, onceMiddleware, type RequestDeduper } from './dedupe.js';
import { slashChannelResolver } from './dm.js';
import { closeServer, startFront } from './front.js';
import { describeSlackFailure, SlackLink } from './link.js';
import { escapeMrkdwn } from './mrkdwn.js';
import { ProgressReply, type Show } from './progress.js';
import { opsRoutes, type Health } from './routes.js';
import { commandName, runCommand } from './run.js';
import { commandFromSlash, messageCommand, pickMessageEvent } from './text.js';

export interface SlackAppOptions {
  dispatcher: Dispatcher;
  log: Logger;
  botToken: string;
  /** Required over HTTP; Socket Mode does not sign requests. */
  signingSecret?: string;
  /** Set → Socket Mode (no public endpoint); /healthz and /metrics are still served on `port`. */
  appToken?: string;
  /** SLACK_API_URL. */
  apiUrl?: string;
  /** 0 picks a free port; listen() reports the one bound. */
  port: number;
  host?: string;
  metricsRegistry: Registry;
  /** The bot's other dependencies (etcd); /healthz adds Slack's state to it. */
  health: () => Promise<Health>;
  /** Default: in-memory, which is right for a single replica that never restarts. */
  deduper?: RequestDeduper;
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
  /** Two-person approval: requests posted with Approve / Reject buttons (approval.ts). */
  approvals?: SlackApprovals;
  /** Lookups for the feed's "Show errors" button and the message shortcut (feed-actions.ts). */
  feedActions?: FeedActionSources;
  /** Retry delays while Slack is unreachable at start-up. Default 1 s doubling to 30 s. */
  connectBackoff?: { minMs: number; maxMs: number };
  /**
   * Socket Mode: how long a ping may go unanswered, which is also the step of the socket
   * client's reconnect delay (1×, 2×, … after consecutive failures). Default 5000 ms.
   */
  socketPingTimeoutMs?: number;
  /**
   * How long stop() waits for running commands to reply. Default 2000 ms: what is left of
   * the 5 s shutdown promise must still resign the feed poster and revoke leases, which a
   * reply stuck on Slack would otherwise hold up until the process is killed.
   */
  stopWaitMs?: number;
  now?: () => number;
}

export interface SlackApp {
  /** Binds HOST:PORT at once, Slack reachable or not: /healthz, /metrics, and /slack/events over HTTP. */
  listen(): Promise<{ port: number }>;
  /**
   * auth.test, retried with backoff until Slack answers, then the Bolt app (and in Socket
   * Mode the socket). Resolves once commands can arrive; rejects only when stop() ends it.
   */
  connect(): Promise<void>;
  /** listen(), then one connection attempt that fails on error (tests, one-shot use). */
  start(): Promise<{ port: number }>;
  /**
   * Stops receiving, then waits (up to `stopWaitMs`) for commands already running to deliver
   * their replies; E_TIMEOUT names the requests it stopped waiting for.
   */
  stop(): Promise<void>;
  /** Slack usable now (Web API answered; in Socket Mode, the socket is up). */
  readonly connected: boolean;
}

/** response_url takes five posts; the final reply needs one and one is kept spare. */
const SLASH_PROGRESS_POSTS = 3;
/** Context key the HTTP receiver fills with the request's (verified) signature. */
const SIGNATURE_KEY = 'slackSignature';
/** Longest an acked command waits for the acks still due in its burst. */
const ACK_BACKLOG_WAIT_MS = 100;
/** A socket that sends no `hello` within this is given up and opened again. */
const SOCKET_HELLO_TIMEOUT_MS = 30_000;
const DEFAULT_API_URL = 'https://slack.com/api/';

interface Bolt {
  app: App;
  /** HTTP mode: the receiver whose listener the front hands verified requests to. */
  http?: HTTPReceiver;
  socket?: SocketModeReceiver;
}

export function createSlackApp(opts: SlackAppOptions): SlackApp {
  const log = opts.log.child({ component: 'slack' });
  const socketMode = !!opts.appToken;
  if (!socketMode && !opts.signingSecret) {
    throw new SwitchyardError('E_CONFIG', 'the Slack HTTP receiver needs SLACK_SIGNING_SECRET (or set SLACK_APP_TOKEN for Socket Mode)');
  }
  const now = opts.now ?? Date.now;
  const apiUrl = opts.apiUrl ?? DEFAULT_API_URL;
  const link = new SlackLink(now);
  const deduper = opts.deduper ?? new MemoryDeduper();
  const backoff = opts.connectBackoff ?? { minMs: 1000, maxMs: 30_000 };
  const clientOptions = () =>
    slackClientOptions(
      { ...(opts.apiUrl ? { apiUrl: opts.apiUrl } : {}), ...(opts.retryConfig ? { retryConfig: opts.retryConfig } : {}) },
      opts.log.child({ component: 'slack-web-api' }),
    );
  // Start-up asks once per attempt and does its own backoff, so a down Slack is reported
  // within seconds instead of after the client's minutes of silent retries; connect() reports
  // each failure once, so the client's own warning is held back.
  const probe = createSlackClient(
    opts.botToken,
    { ...(opts.apiUrl ? { apiUrl: opts.apiUrl } : {}), retryConfig: { retries: 0 } },
    opts.log.child({}, { level: 'error' }),
  );

  const routes = opsRoutes({
    metricsRegistry: opts.metricsRegistry,
    log,
    health: async () => {
      let deps: Health;
      try {
        deps = await opts.health();
      } catch (err) {
        deps = { ok: false, details: { error: err instanceof Error ? err.message : String(err) } };
      }
      const details = typeof deps.details === 'object' && deps.details !== null ? deps.details : deps.details === undefined ? {} : { other: deps.details };
      return { ok: link.ok && deps.ok, details: { slack: link.describe(), ...details } };
    },
  });

  const backlog = new AckBacklog();
  /** Work running (commands, button presses), with what stop() names if it gives up on it. */
  const inflight = new Map<Promise<void>, string>();
  const track = (p: Promise<void>, what = 'a button press or shortcut'): Promise<void> => {
    inflight.set(p, what);
    void p.finally(() => inflight.delete(p));
    return p;
  };

  let bolt: Bolt | undefined;
  let ready = false;
  let server: Server | undefined;
  let stopping = false;
  const abort = new AbortController();

  function buildBolt(identity: { botUserId: string; botId?: string }): Bolt {
    const boltLog = boltLogger(opts.log.child({ component: 'bolt' }));
    const receivers: Omit<Bolt, 'app'> = socketMode
      ? {
          socket: new SocketModeReceiver({
            appToken: opts.appToken!,
            logger: boltLog,
            ...(opts.socketPingTimeoutMs !== undefined ? { clientPingTimeout: opts.socketPingTimeoutMs } : {}),
            // The socket client keeps its own retry policy for apps.connections.open (it
            // retries for as long as it takes); only the base URL and timeout are ours.
            installerOptions: { clientOptions: { slackApiUrl: apiUrl.endsWith('/') ? apiUrl : `${apiUrl}/`, timeout: 15_000 } },
            customPropertiesExtractor: (args: { envelope_id?: unknown }) => ({ envelopeId: args.envelope_id }),
          }),
        }
      : {
          http: new HTTPReceiver({
            signingSecret: opts.signingSecret!,
            // front.ts verified signature and timestamp (both bounds) before handing it over.
            signatureVerification: false,
            endpoints: '/slack/events',
            logger: boltLog,
            customPropertiesExtractor: (req) => ({ [SIGNATURE_KEY]: req.headers['x-slack-signature'] }),
          }),
        };
    const app = new App({
      token: opts.botToken,
      // auth.test already answered (connect()); Bolt need not ask again.
      botUserId: identity.botUserId,
      ...(identity.botId ? { botId: identity.botId } : {}),
      tokenVerificationEnabled: false,
      logger: boltLog,
      clientOptions: clientOptions(),
      // No conversation state is used; Bolt's default store would keep per-channel timers.
      convoStore: false,
      receiver: receivers.socket ?? receivers.http!,
      ...(socketMode ? { socketMode: true, appToken: opts.appToken } : {}),
    });
    app.error(async (err) => {
      log.error({ err }, 'unhandled error in a Slack handler');
    });
    // After Bolt's ignoreSelf, before every listener: a retried or replayed request stops here.
    app.use(onceMiddleware({ deduper, log, metricsRegistry: opts.metricsRegistry, signatureKey: SIGNATURE_KEY, now, backlog }));
    registerHandlers(app);
    return { app, ...receivers };
  }

  function registerHandlers(app: App): void {
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
    const confirm = opts.approvals ? opts.approvals.attach(app, track, confirmations?.request) : confirmations?.request;
    registerFeedActions(app, {
      dispatcher: opts.dispatcher,
      log,
      track,
      resolveChannel: resolveSlashChannel,
      ...(confirm ? { confirm } : {}),
      ...(opts.feedActions ? { sources: opts.feedActions } : {}),
    });

    app.command(opts.slashCommand ?? '/ops', async ({ command, ack, respond }) => {
      const text = commandFromSlash(command.text);
      // Slack wants the ack within 3 s; everything slow happens after it.
      await ackOrCarryOn(() => ack(text ? { response_type: 'ephemeral', text: `running \`${escapeMrkdwn(clip(text, 200))}\`…` } : undefined), log);
      // Requests of the same burst are acked before this one's work starts: their acks wait
      // on their etcd claims, this command's work can wait a moment.
      await backlog.cleared(ACK_BACKLOG_WAIT_MS);
      await new Promise<void>((resolve) => setImmediate(resolve));
      const requestId = command.trigger_id || randomUUID();
      const reqLog = log.child({ requestId, user: command.user_id, command: commandName(text), via: 'slash' });
      const caller: Caller = {
        userId: command.user_id,
        channel: await resolveSlashChannel(command.channel_id, command.user_id),
        source: 'slack',
      };
      const reply = new ProgressReply(respondSurface(respond), reqLog, SLASH_PROGRESS_POSTS);
      await track(
        runCommand({ dispatcher: opts.dispatcher, text, caller, requestId, reply, log: reqLog, ...(confirm ? { confirm } : {}) }),
        `request ${requestId}`,
      );
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
      await track(
        runCommand({ dispatcher: opts.dispatcher, text: cmd.text, caller, requestId, reply, log: reqLog, ...(confirm ? { confirm } : {}) }),
        `request ${requestId}`,
      );
    };
    app.event('message', onMessage);
    app.event('app_mention', onMessage);
  }

  /** One attempt: auth.test, the Bolt app, and in Socket Mode the socket up to its `hello`. */
  async function attempt(): Promise<void> {
    let method = 'auth.test';
    try {
      const auth = await probe.auth.test();
      if (stopping) throw stoppedError();
      if (typeof auth.user_id !== 'string') throw new SwitchyardError('E_UNAVAILABLE', 'auth.test answered without the bot user ID');
      const built = buildBolt({ botUserId: auth.user_id, ...(typeof auth.bot_id === 'string' ? { botId: auth.bot_id } : {}) });
      bolt = built;
      if (built.socket) {
        method = 'apps.connections.open';
        watchSocket(built.socket);
        await withTimeout(built.app.start() as Promise<unknown>, SOCKET_HELLO_TIMEOUT_MS, 'no hello on the Socket Mode connection');
      }
      if (stopping) throw stoppedError();
      ready = true;
      link.up();
      log.info({ mode: socketMode ? 'socket' : 'http', botUserId: auth.user_id }, 'connected to Slack');
    } catch (err) {
      // stop() has closed whatever was opened.
      if (stopping) throw stoppedError();
      const failed = bolt;
      bolt = undefined;
      if (failed?.socket) await failed.app.stop().catch(() => {});
      const failure = describeSlackFailure(err, method, apiUrl);
      link.down(failure.tokenRefused ? `token refused: ${failure.text}` : failure.text);
      throw Object.assign(new SwitchyardError('E_UNAVAILABLE', failure.text, { cause: err }), { tokenRefused: failure.tokenRefused });
    }
  }

  /** The socket client reconnects by itself; this only keeps /healthz and the log honest. */
  function watchSocket(receiver: SocketModeReceiver): void {
    receiver.client.on('close', () => {
      if (stopping || !ready || !link.ok) return;
      link.down('the Socket Mode connection closed; reconnecting');
      log.warn('Socket Mode connection lost; reconnecting');
    });
    receiver.client.on('connected', () => {
      if (stopping || !ready || link.ok) return;
      link.up();
      log.info('Socket Mode connection re-established');
    });
  }

  const self: SlackApp = {
    get connected() {
      return ready && link.ok;
    },
    async listen() {
      if (server) throw new SwitchyardError('E_INTERNAL', 'listen() was called twice');
      const front = await startFront({
        routes,
        ...(socketMode ? {} : { events: { signingSecret: opts.signingSecret!, listener: () => (ready ? bolt?.http?.requestListener : undefined), now } }),
        port: opts.port,
        ...(opts.host !== undefined ? { host: opts.host } : {}),
        log,
      });
      server = front.server;
      log.info(
        { port: front.port, host: opts.host ?? '(all)', mode: socketMode ? 'socket' : 'http' },
        socketMode ? 'listening for health and metrics' : 'listening for health, metrics and Slack requests',
      );
      return { port: front.port };
    },
    async connect() {
      let delay = backoff.minMs;
      for (let n = 1; ; n++) {
        if (stopping) throw stoppedError();
        try {
          await attempt();
          return;
        } catch (err) {
          if (stopping) throw stoppedError();
          const tokenRefused = (err as { tokenRefused?: boolean }).tokenRefused === true;
          // A refused token will not start working by itself: ask rarely, and say so loudly.
          const wait = tokenRefused ? backoff.maxMs : delay;
          const fields = { attempt: n, retryInMs: wait, reason: (err as Error).message };
          if (tokenRefused) log.error(fields, 'Slack refused the bot token (SLACK_BOT_TOKEN); commands cannot arrive until it is replaced');
          else log.warn(fields, 'Slack is unreachable; retrying');
          await sleep(wait, undefined, { signal: abort.signal }).catch(() => {});
          delay = Math.min(backoff.maxMs, delay * 2);
        }
      }
    },
    async start() {
      const bound = await self.listen();
      try {
        await attempt();
      } catch (err) {
        await self.stop();
        throw err;
      }
      return bound;
    },
    async stop() {
      if (stopping) return;
      stopping = true;
      ready = false;
      abort.abort();
      const current = bolt;
      bolt = undefined;
      // Stop receiving first (the socket, then the listener), then let running commands reply.
      if (current?.socket) await current.app.stop().catch((err: unknown) => log.warn({ err }, 'closing the Socket Mode connection failed'));
      if (server) await closeServer(server).catch((err: unknown) => log.warn({ err }, 'closing the HTTP listener failed'));
      server = undefined;
      const waitMs = opts.stopWaitMs ?? 2000;
      const replied = await settledWithin(
        Promise.allSettled([...inflight.keys()]).then(() => true),
        waitMs,
      );
      if (!replied) {
        const running = [...inflight.values()];
        throw new SwitchyardError('E_TIMEOUT', `stopped waiting for ${running.length} running command(s) after ${waitMs} ms`, { details: running });
      }
    },
  };
  return self;
}

function stoppedError(): SwitchyardError {
  return new SwitchyardError('E_UNAVAILABLE', 'the Slack app was stopped before it connected');
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SwitchyardError('E_TIMEOUT', `${what} within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
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

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}
