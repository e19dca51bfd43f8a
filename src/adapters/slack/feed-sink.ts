import type { FeedEvent, FeedSink } from '../../core/feed.js';
import type { Logger } from '../../core/log.js';
import type { ChatClient } from './client.js';
import { renderFeedEvent } from './render.js';

export interface SlackFeedSinkOptions {
  client: ChatClient;
  /** Channel ID from switchyard.yaml `slack.feedChannel`. */
  channel: string;
  log: Logger;
}

/**
 * The #ops feed, one message per event, posted in order. Rate pacing and coalescing come
 * later behind the same interface; until then a failed post is logged with the event's
 * text, so nothing disappears without a trace.
 */
export class SlackFeedSink implements FeedSink {
  private tail: Promise<void> = Promise.resolve();
  private readonly log: Logger;

  constructor(private readonly opts: SlackFeedSinkOptions) {
    this.log = opts.log.child({ component: 'slack-feed', channel: opts.channel });
  }

  publish(event: FeedEvent): void {
    // Chained so events reach the channel in the order they happened.
    this.tail = this.tail.then(() => this.post(event));
  }

  /** Resolves once every event published so far has been posted or logged as lost. */
  flush(): Promise<void> {
    return this.tail;
  }

  /** Never rejects: the chain must survive a failed post. */
  private async post(event: FeedEvent): Promise<void> {
    try {
      await this.opts.client.chat.postMessage({ channel: this.opts.channel, unfurl_links: false, unfurl_media: false, ...renderFeedEvent(event) });
    } catch (err) {
      this.log.error({ err, event }, 'feed event not delivered to Slack');
    }
  }
}
