/**
 * Outbound operational events (the #ops feed). Issue-5 work builds coalescing and
 * pacing behind this interface; producers only ever call `publish`.
 */
export interface FeedEvent {
  kind: string;
  /** Plain text; the Slack sink escapes it. */
  text: string;
  at?: string;
}

export interface FeedSink {
  publish(event: FeedEvent): void;
}

export const nullFeed: FeedSink = { publish: () => {} };
