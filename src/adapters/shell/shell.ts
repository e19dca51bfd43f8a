import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { Caller } from '../../core/caller.js';
import type { Dispatcher } from '../../core/dispatch.js';
import type { FeedSink } from '../../core/feed.js';
import { replyToText } from '../../core/reply.js';

export interface ShellOptions {
  dispatcher: Dispatcher;
  caller: Caller;
  input: Readable;
  write: (text: string) => void;
  /** Aborted: read no further (as at EOF); the command in flight still gets its reply. */
  signal?: AbortSignal;
}

export interface ShellSummary {
  commands: number;
  failed: number;
}

/**
 * One command per line, in order: a script of commands behaves like a person typing them.
 * Resolves at EOF once every reply has been written.
 */
export async function runShell(opts: ShellOptions): Promise<ShellSummary> {
  const rl = createInterface({ input: opts.input, crlfDelay: Infinity, terminal: false });
  const stop = () => rl.close();
  if (opts.signal?.aborted) stop();
  opts.signal?.addEventListener('abort', stop, { once: true });
  let commands = 0;
  let failed = 0;
  let n = 0;
  for await (const raw of rl) {
    if (opts.signal?.aborted) break;
    n++;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    commands++;
    const reply = await opts.dispatcher.dispatch({
      text: line,
      caller: opts.caller,
      requestId: `shell-${process.pid}-${n}`,
      onProgress: (text) => opts.write(`… ${text}\n`),
    });
    if (!reply.ok) failed++;
    opts.write(`${replyToText(reply)}\n`);
  }
  opts.signal?.removeEventListener('abort', stop);
  return { commands, failed };
}

/** Feed events in the shell go to stdout beside the replies, marked so scripts can tell them apart. */
export function shellFeed(write: (text: string) => void): FeedSink {
  return { publish: (e) => write(`[ops] ${e.text}\n`) };
}
