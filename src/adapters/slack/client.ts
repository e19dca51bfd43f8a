import { webApi } from '@slack/bolt';
import type { Logger } from '../../core/log.js';
import { boltLogger } from './bolt-logger.js';

export type WebClient = webApi.WebClient;
export type RetryOptions = webApi.RetryOptions;

/** The slice of the Web API the feed and replies use; tests may pass a fake. */
export interface ChatClient {
  chat: Pick<WebClient['chat'], 'postMessage' | 'update'>;
}

export interface SlackClientSettings {
  /** SLACK_API_URL: a proxy or a test stand-in instead of https://slack.com/api/. */
  apiUrl?: string;
  /**
   * The Web API client retries failed calls and sleeps out 429s (Retry-After). Its default
   * policy keeps trying for ~30 minutes, which would also stall start-up (auth.test) when
   * Slack is unreachable; five tries in about five minutes is the default here.
   */
  retryConfig?: RetryOptions;
  /** Throw on HTTP 429 instead of sleeping out Retry-After inside the client. */
  rejectRateLimitedCalls?: boolean;
}

/**
 * For the #ops feed: the feed's pacer owns timing (one post a second, Retry-After, backoff
 * that never gives up), so the client must neither retry nor sleep on its own.
 */
export function feedClientSettings(apiUrl?: string): SlackClientSettings {
  return { ...(apiUrl ? { apiUrl } : {}), retryConfig: { retries: 0 }, rejectRateLimitedCalls: true };
}

export function slackClientOptions(settings: SlackClientSettings, log: Logger): webApi.WebClientOptions {
  return {
    ...(settings.apiUrl ? { slackApiUrl: withTrailingSlash(settings.apiUrl) } : {}),
    retryConfig: settings.retryConfig ?? webApi.retryPolicies.fiveRetriesInFiveMinutes,
    ...(settings.rejectRateLimitedCalls ? { rejectRateLimitedCalls: true } : {}),
    // A hung connection must not hold a reply forever; a retry follows the timeout.
    timeout: 15_000,
    logger: boltLogger(log),
  };
}

/** A Web API client for code outside Bolt's handlers (the #ops feed). */
export function createSlackClient(botToken: string, settings: SlackClientSettings, log: Logger): WebClient {
  return new webApi.WebClient(botToken, slackClientOptions(settings, log.child({ component: 'slack-web-api' })));
}

/** Method names are appended to the base URL, so it must end in a slash. */
function withTrailingSlash(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}
