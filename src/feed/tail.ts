/**
 * The feed for `switchyard shell`: every registry change from start-up on, one plain line
 * each, to a FeedSink (the shell prints `[ops] …`). No election and no position: a shell
 * is one person's session, not the #ops channel.
 */
import type { Dispatcher } from '../core/dispatch.js';
import type { FeedSink } from '../core/feed.js';
import type { Logger } from '../core/log.js';
import { changeLines, plainStyle } from './format.js';
import type { ChangeSource } from './ports.js';

export interface FeedTail {
  /**
   * Wait (at most `timeoutMs`) until the changes of every attributed write made so far
   * were printed: the shell calls it after each command so the command's own changes
   * come out before its reply, not at some random later point.
   */
  settle(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startFeedTail(opts: { source: ChangeSource; sink: FeedSink; log: Logger }): Promise<FeedTail> {
  const log = opts.log.child({ component: 'feed-tail' });
  let seen = BigInt(await opts.source.currentRevision());
  const waiters = new Set<{ until: bigint; resolve: () => void }>();
  const advance = (revision: string) => {
    seen = BigInt(revision) > seen ? BigInt(revision) : seen;
    for (const w of waiters) {
      if (seen >= w.until) {
        waiters.delete(w);
        w.resolve();
      }
    }
  };
  const print = (lines: string[], kind: string) => {
    for (const text of lines) opts.sink.publish({ kind, text });
  };
  const watch = await opts.source.open(String(seen), {
    changes: (changes, revision) => {
      for (const c of changes) print(changeLines(c, plainStyle), c.kind);
      advance(revision);
    },
    gap: (change, revision) => {
      print(changeLines(change, plainStyle), change.kind);
      advance(revision);
    },
    error: (err) => log.warn({ err }, 'feed watch problem'),
  });
  return {
    async settle(timeoutMs = 1000) {
      let until: bigint;
      try {
        until = BigInt(await opts.source.lastWriteRevision());
      } catch (err) {
        log.debug({ err }, 'cannot tell the newest write; not waiting for the feed');
        return;
      }
      if (seen >= until) return;
      await new Promise<void>((resolve) => {
        const w = {
          until,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(w);
          resolve();
        }, timeoutMs);
        waiters.add(w);
      });
    },
    close: () => watch.close(),
  };
}

/** The shell's dispatcher: each reply waits until the command's own changes were printed. */
export function settlingDispatcher(dispatcher: Dispatcher, tail: FeedTail): Dispatcher {
  return {
    async dispatch(req) {
      const reply = await dispatcher.dispatch(req);
      await tail.settle();
      return reply;
    },
  };
}
