import { SwitchyardError } from './errors.js';
import { formatDuration } from './names.js';
import { DEFAULT_COMMAND_TIMEOUT_MS } from './plugin-api.js';
import { ok, type Reply } from './reply.js';

/** The part of a command the deadline needs; built-ins and plugins alike. */
interface Timed {
  name: string;
  timeoutMs?: number | ((args: never) => number);
}

/** How long `cmd` may run with these arguments: its own figure (or function of them), else the default. */
export function commandTimeoutMs(cmd: Timed, args: unknown): number {
  const t = cmd.timeoutMs;
  const ms = typeof t === 'function' ? (t as (a: unknown) => number)(args) : t;
  // A plugin's function may return anything at run time; a bad figure must not disable the cut-off.
  return typeof ms === 'number' && Number.isFinite(ms) && ms > 0 ? ms : DEFAULT_COMMAND_TIMEOUT_MS;
}

/**
 * Runs one step of a command (confirmation check, handler) until the command's deadline.
 * Past it the caller gets E_TIMEOUT at once; the work is not cancelled (nothing can cancel
 * a plugin's promise), so the reply says it may still complete, and a late failure is
 * logged rather than left unhandled.
 */
export async function beforeDeadline<T>(
  cmd: Timed,
  deadline: { at: number; ms: number },
  work: () => Promise<T>,
  onLateFailure: (err: unknown) => void,
): Promise<T> {
  const running = work();
  let timer: NodeJS.Timeout | undefined;
  const cutOff = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => {
        running.catch(onLateFailure);
        reject(
          new SwitchyardError('E_TIMEOUT', `${cmd.name} did not finish within ${formatDuration(deadline.ms)}; it may still complete`, {
            details: ['its changes, if any, appear in the #ops feed and in status'],
          }),
        );
      },
      Math.max(0, deadline.at - performance.now()),
    );
  });
  try {
    return await Promise.race([running, cutOff]);
  } finally {
    clearTimeout(timer);
  }
}

/** A handler's plain string is an ok reply with that summary. */
export function asReply(out: Reply | string): Reply {
  return typeof out === 'string' ? ok(out) : out;
}
