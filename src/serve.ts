import { EtcdConfirmationStore } from './adapters/etcd/confirmations.js';
import { withinDeadline } from './adapters/etcd/deadline.js';
import { EtcdDeduper } from './adapters/etcd/dedupe.js';
import { createSlackClient, feedClientSettings } from './adapters/slack/client.js';
import { createSlackApp } from './adapters/slack/app.js';
import { SlackApprovals } from './adapters/slack/approval.js';
import { EtcdFeedMutes } from './adapters/etcd/feed-mutes.js';
import { loadConfig, loadSecrets } from './config/load.js';
import { SwitchyardError } from './core/errors.js';
import { nullFeed } from './core/feed.js';
import { createLogger } from './core/log.js';
import { SHUTDOWN_IO_MS, shutDown, stopSignal } from './core/shutdown.js';
import type { FeedService } from './feed/service.js';
import { buildSlackFeeds, feedRoutes } from './app/feeds.js';
import { startHistoryRecorder } from './app/history.js';
import { feedActionSources } from './app/feed-actions.js';
import { EtcdHistory } from './adapters/etcd/history.js';
import { startOrchestrator } from './orchestrator/orchestrator.js';
import { buildRuntime } from './app/runtime.js';

/** `switchyard serve`: the Slack bot, its #ops feed and (when configured) the orchestrator, until SIGINT/SIGTERM. */
export async function serve(configPath: string, env: NodeJS.ProcessEnv): Promise<number> {
  const config = await loadConfig(configPath, env);
  const secrets = loadSecrets(env);
  const log = createLogger({ ...(secrets.logLevel ? { level: secrets.logLevel } : {}) });
  log.info({ config: configPath, socketMode: Boolean(secrets.slackAppToken) }, 'serve starting');
  if (!secrets.slackBotToken) throw new SwitchyardError('E_CONFIG', 'serve needs SLACK_BOT_TOKEN in the environment');
  // Socket Mode receives over the app's own WebSocket: nothing is signed, no secret is needed.
  if (!secrets.slackAppToken && !secrets.slackSigningSecret) {
    throw new SwitchyardError('E_CONFIG', 'serve needs SLACK_SIGNING_SECRET for the HTTP receiver, or SLACK_APP_TOKEN for Socket Mode');
  }
  const apiUrl = secrets.slackApiUrl;
  const routes = feedRoutes(config);
  const feed = routes.length ? buildSlackFeeds({ routes, client: createSlackClient(secrets.slackBotToken, feedClientSettings(apiUrl), log), log }) : undefined;
  if (!feed) log.warn('neither slack.feedChannel nor slack.feeds is set: #ops feed events are not posted');
  const runtime = await buildRuntime({ config, secrets, log, feed: feed?.sink ?? nullFeed, watchAcl: true, agent: true });
  feed?.instrument(runtime.metrics);
  // Kept whether or not Slack is reachable: history does not wait for the channel.
  const recorder = startHistoryRecorder({
    registry: runtime.registry,
    history: new EtcdHistory(runtime.registry),
    retention: { retentionMs: config.history.retention, maxEntries: config.history.maxEntries },
    log,
  });
  // Its own client: the expiry sweep edits request messages outside any Slack request.
  const approvalClient = createSlackClient(secrets.slackBotToken, { ...(apiUrl ? { apiUrl } : {}), retryConfig: { retries: 2 } }, log);
  const approvals = new SlackApprovals({ gate: runtime.approvals, client: approvalClient, log }).start();
  const slack = createSlackApp({
    dispatcher: runtime.router,
    log,
    botToken: secrets.slackBotToken,
    ...(secrets.slackSigningSecret ? { signingSecret: secrets.slackSigningSecret } : {}),
    ...(secrets.slackAppToken ? { appToken: secrets.slackAppToken } : {}),
    ...(apiUrl ? { apiUrl } : {}),
    host: secrets.host,
    port: secrets.port,
    metricsRegistry: runtime.metrics.registry,
    confirmations: new EtcdConfirmationStore(runtime.registry),
    approvals,
    feedActions: feedActionSources(runtime),
    // Shared by replicas and kept across restarts: a retry or replay runs nowhere twice.
    deduper: new EtcdDeduper(runtime.registry),
    health: async () => {
      const h = await runtime.registry.health();
      const down = h.endpoints.filter((e) => !e.ok).map((e) => `${e.endpoint}: ${e.error ?? 'down'}`);
      const etcd = !h.ok ? `unreachable: ${down.join('; ')}` : down.length ? `ok, quorum kept; not answering: ${down.join('; ')}` : 'ok';
      return { ok: h.ok, details: { etcd, etcdEndpoints: h.endpoints } };
    },
  });
  // Health and metrics answer from the first second, Slack reachable or not.
  const { port } = await slack.listen();
  log.info({ host: secrets.host, port, socketMode: Boolean(secrets.slackAppToken) }, 'switchyard serving');
  // Death detection and reconcile run beside the bot whenever docker: is configured.
  const orchestrator = runtime.orchestration ? startOrchestrator(runtime.orchestration) : undefined;
  // One replica at a time posts registry changes (an etcd election), and only one that can
  // reach Slack may hold that role; every replica serves commands once connected.
  let posters: FeedService[] = [];
  // Set once a signal arrives: a connection that completes during shutdown must not start
  // a poster after the step that stops posters has run.
  let stopping = false;
  void slack.connect().then(
    () => {
      if (feed && !stopping)
        posters = feed.startPosters({ registry: runtime.registry, mutes: new EtcdFeedMutes(runtime.registry), log, metrics: runtime.metrics });
    },
    // Only stop() ends the attempts; the shutdown below is already under way then.
    (err: unknown) => log.debug({ err }, 'no longer connecting to Slack'),
  );

  await stopSignal(log);
  stopping = true;
  // Requests first (nothing new starts), then the feed poster resigns so a standby takes
  // over at once; closing the registry revokes this replica's locks and leases. Every etcd
  // call from here on shares one deadline that ends before the grace period does.
  await shutDown(
    log,
    [
      ['orchestrator', orchestrator && (() => orchestrator.close())],
      ['slack', () => slack.stop()],
      ['approval expiry sweep', () => approvals.stop()],
      // In parallel: each resigns its own role, none waits for another.
      ['feed posters and history recorder', () => Promise.all([...posters.map((p) => p.stop()), recorder.stop()]).then(() => undefined)],
      ['feed', feed && (() => feed.stop())],
      ['runtime', () => runtime.close()],
    ],
    { scope: (fn) => withinDeadline(SHUTDOWN_IO_MS, fn) },
  );
  return 0;
}
