import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Outbound operational events (the #ops feed). Registry changes reach the feed through
 * the registry watch (src/feed); producers of other news (an ACL reload) call `publish`.
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

/**
 * Why a registry write happens. The etcd adapter stores it in the same transaction as the
 * write, so whichever replica reports the change can say who and what was behind it; a
 * change without one was made outside switchyard.
 */
export interface Cause {
  /** Who: a Slack user ID, the shell's --user, or a component ("docker", an agent ID). */
  by: string;
  /** The command behind the change, when a command is. */
  command?: string;
  requestId?: string;
  source?: string;
  /** A reason other than a command, e.g. "container died". */
  reason?: string;
  /** A command run on approval: who approved it. */
  approvedBy?: readonly string[];
}

// Ambient rather than a parameter: plugins call the registry port, which has no room for
// it, and a command may write through several layers (scale → docker → registry).
const ambient = new AsyncLocalStorage<Cause>();

/**
 * Run `fn` with `cause` attached to every registry write it makes, e.g.
 * `withCause({ by: 'docker', reason: 'container died' }, () => registry.deregister(s, i))`.
 */
export function withCause<T>(cause: Cause, fn: () => T): T {
  return ambient.run(cause, fn);
}

export function currentCause(): Cause | undefined {
  return ambient.getStore();
}

/** Who is behind the write being made: the ambient cause's `by`, else `fallback`. */
export function currentActor(fallback = 'switchyard'): string {
  return ambient.getStore()?.by ?? fallback;
}
