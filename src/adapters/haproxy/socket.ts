/**
 * The transport under HAProxy's admin socket and master CLI: a unix stream socket that
 * takes text commands and answers in text.
 *
 * One connection per exchange rather than a long-lived session: HAProxy closes idle CLI
 * sessions (`stats timeout`), replaces the listening socket on every reload, and a
 * connection per exchange costs well under a millisecond on a local socket — so there is
 * no session state to go stale. Several commands are pipelined on one connection in
 * `prompt` mode, where HAProxy ends every reply with a `> ` prompt we can split on.
 */
import { connect } from 'node:net';
import { SwitchyardError } from '../../core/errors.js';

export interface ExchangeOptions {
  /** Budget for the whole exchange. Default 5000 ms. */
  timeoutMs?: number;
  /** Says what the socket is, for messages ("admin socket", "master socket"). */
  what?: string;
}

// Errors that mean "nothing is listening there (now)": HAProxy is stopped, starting, or
// (master socket) re-executing during a reload. Callers retry these, never others.
const UNREACHABLE = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOTSOCK']);

export function isUnreachable(err: unknown): boolean {
  return err instanceof SwitchyardError && err.code === 'E_UNAVAILABLE';
}

/** Send `payload` and read until HAProxy closes the connection. */
function roundTrip(path: string, payload: string, halfClose: boolean, opts: ExchangeOptions): Promise<string> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const what = opts.what ?? 'HAProxy socket';
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const sock = connect(path);
    const finish = (err: SwitchyardError | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const timer = setTimeout(() => finish(new SwitchyardError('E_TIMEOUT', `${what} ${path} did not answer within ${timeoutMs} ms`)), timeoutMs);
    sock.on('connect', () => {
      // The admin socket answers a single command and closes only once it has seen the end
      // of input; the master CLI keeps the connection open until then too.
      if (halfClose) sock.end(payload);
      else sock.write(payload);
    });
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('end', () => finish(undefined));
    sock.on('close', () => finish(undefined));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? 'error';
      if (UNREACHABLE.has(code)) {
        finish(new SwitchyardError('E_UNAVAILABLE', `HAProxy is not reachable on its ${what} ${path} (${code})`, { cause: err }));
      } else {
        finish(new SwitchyardError('E_UNAVAILABLE', `${what} ${path}: ${err.message}`, { cause: err }));
      }
    });
  });
}

/** One command, one connection; resolves to HAProxy's reply text. */
export function exchange(path: string, command: string, opts: ExchangeOptions = {}): Promise<string> {
  assertCommand(command);
  return roundTrip(path, `${command}\n`, true, opts);
}

/**
 * Several commands on one connection; resolves to one reply per command, in order.
 * Much faster than a connection per command for bursts (hundreds of `add server`).
 */
export async function exchangeMany(path: string, commands: string[], opts: ExchangeOptions = {}): Promise<string[]> {
  if (commands.length === 0) return [];
  if (commands.length === 1) return [await exchange(path, commands[0]!, opts)];
  commands.forEach(assertCommand);
  const raw = await roundTrip(path, `prompt\n${commands.join('\n')}\nquit\n`, false, opts);
  return splitPromptReplies(raw, commands.length, opts.what ?? 'HAProxy socket');
}

/**
 * In prompt mode HAProxy writes every reply followed by "> " at the start of a line; the
 * first prompt answers the `prompt` command itself.
 */
export function splitPromptReplies(raw: string, expected: number, what = 'HAProxy socket'): string[] {
  const parts = raw.split(/(?:^|(?<=\n))> /);
  // parts[0] answers `prompt` itself; every reply is followed by a prompt, so the text
  // after the last prompt (what `quit` wrote: nothing, or a reply cut short) is not one.
  const replies = parts.slice(1, -1).slice(0, expected);
  if (replies.length !== expected) {
    throw new SwitchyardError('E_UNAVAILABLE', `${what} closed the session after ${replies.length} of ${expected} commands`);
  }
  return replies;
}

function assertCommand(command: string): void {
  // A newline or ";" would smuggle a second command past the caller's validation.
  if (/[\n\r;]/.test(command)) throw new SwitchyardError('E_INTERNAL', `refusing to send a multi-command line to HAProxy: ${JSON.stringify(command)}`);
}
