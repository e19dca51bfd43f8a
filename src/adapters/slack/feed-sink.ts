import { webApi } from '@slack/bolt';
import type { FeedEvent, FeedSink } from '../../core/feed.js';
import type { Logger } from '../../core/log.js';
import type { Metrics } from '../../core/metrics.js';
import { FeedPacer, type FeedOutlet, type PacerOptions, type SendFailure } from '../../feed/pacer.js';
import type { ChatClient } from './client.js';
import { planFeedMessages, type FeedMessage } from './feed-render.js';

export interface SlackFeedSinkOptions {
  /**
   * A client that rejects rate-limited calls and does not retry on its own
   * (feedClientSettings()): the pacer decides when to post, or pacing is not ours.
   */
  client: ChatClient;
  /** Channel ID from switchyard.yaml `slack.feedChannel`. */
  channel: string;
  log: Logger;
  pacing?: PacerOptions;
}

/** Slack refusals that a plainer message (text only) avoids. */
const SIMPLIFIABLE = new Set([
  'invalid_blocks',
  'invalid_blocks_format',
  'msg_too_long',
  'invalid_metadata_format',
  'invalid_metadata_schema',
  'metadata_too_large',
]);

/**
 * The #ops channel: other events (`publish`) and registry changes (from the feed service,
 * through `pacer`) share one paced queue, so the channel never sees more than one message
 * a second from this process.
 */
export class SlackFeedSink implements FeedSink {
  readonly pacer: FeedPacer<FeedMessage>;

  constructor(opts: SlackFeedSinkOptions) {
    const log = opts.log.child({ component: 'slack-feed', channel: opts.channel });
    this.pacer = new FeedPacer(new SlackFeedOutlet(opts.client, opts.channel), log, opts.pacing);
  }

  publish(event: FeedEvent): void {
    this.pacer.enqueue([{ event: { ...event, at: event.at ?? new Date().toISOString() }, seenAt: Date.now() }]);
  }

  /** Queue depth and lag on /metrics, and post outcomes. */
  instrument(metrics: Metrics): void {
    metrics.feedProbe.depth = () => this.pacer.depth;
    metrics.feedProbe.lagSeconds = () => this.pacer.lagSeconds();
    this.pacer.setObserver({
      posted: () => metrics.feedMessages.inc({ result: 'posted' }),
      rateLimited: () => metrics.feedMessages.inc({ result: 'rate_limited' }),
      failed: () => metrics.feedMessages.inc({ result: 'failed' }),
    });
  }

  /** Resolves once everything queued so far was posted. */
  idle(): Promise<void> {
    return this.pacer.idle();
  }

  stop(): Promise<void> {
    return this.pacer.stop();
  }
}

class SlackFeedOutlet implements FeedOutlet<FeedMessage> {
  constructor(
    private readonly client: ChatClient,
    private readonly channel: string,
  ) {}

  plan = planFeedMessages;

  async send(message: FeedMessage, threadTs: string | undefined): Promise<string | undefined> {
    const res = await this.client.chat.postMessage({
      channel: this.channel,
      ...(threadTs !== undefined ? { thread_ts: threadTs } : {}),
      // host:port strings everywhere: link previews of them are noise.
      unfurl_links: false,
      unfurl_media: false,
      ...message,
    });
    return res.ts;
  }

  classify(err: unknown, message: FeedMessage): SendFailure {
    const code = (err as { code?: unknown } | null)?.code;
    if (code === webApi.ErrorCode.RateLimitedError) {
      const seconds = (err as { retryAfter?: unknown }).retryAfter;
      return { retryAfterMs: Math.max(1, typeof seconds === 'number' ? seconds : 1) * 1000 };
    }
    if (code === webApi.ErrorCode.PlatformError && message.blocks.length > 0) {
      const slackError = (err as { data?: { error?: unknown } }).data?.error;
      if (typeof slackError === 'string' && SIMPLIFIABLE.has(slackError)) {
        const plain: FeedMessage = { text: message.text, blocks: [] };
        return { replaceWith: plain };
      }
    }
    return { backoff: true };
  }

  describe(message: FeedMessage): string {
    return message.text;
  }
}
