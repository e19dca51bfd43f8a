import type { Caller } from '../../core/caller.js';
import type { Dispatcher } from '../../core/dispatch.js';
import { ERRORS, isSwitchyardError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { Reply } from '../../core/reply.js';
import type { ProgressReply } from './progress.js';
import { renderReply, type SlackMessage } from './render.js';

export interface RunOptions {
  dispatcher: Dispatcher;
  text: string;
  caller: Caller;
  requestId: string;
  reply: ProgressReply;
  /** Already carries requestId, user and command. */
  log: Logger;
  /**
   * Turns a refusal for want of confirmation (E_CONFIRM_REQUIRED) into buttons, and a
   * request recorded for approval (E_APPROVAL_PENDING) into its posted request; undefined
   * from it, or no hook, shows the reply as it is (which mentions --yes).
   */
  confirm?: (p: { text: string; caller: Caller; reply: Reply; log: Logger }) => Promise<SlackMessage | undefined>;
}

/**
 * Dispatch one command and show its result. Never rejects: a failing dispatcher is logged
 * and answered with an error the user can quote (the request id), and a reply Slack
 * refuses is logged — the caller is a Slack handler that has already acked.
 */
export async function runCommand(o: RunOptions): Promise<void> {
  const started = Date.now();
  let msg: SlackMessage;
  try {
    const reply = await o.dispatcher.dispatch({ text: o.text, caller: o.caller, requestId: o.requestId, onProgress: o.reply.progress });
    o.log.info({ ok: reply.ok, code: reply.code, ms: Date.now() - started }, 'command finished');
    const asks = reply.code === 'E_CONFIRM_REQUIRED' || reply.code === 'E_APPROVAL_PENDING';
    const buttons = asks && o.confirm ? await o.confirm({ text: o.text, caller: o.caller, reply, log: o.log }) : undefined;
    msg = buttons ?? renderReply(reply);
  } catch (err) {
    o.log.error({ err, ms: Date.now() - started }, 'command failed in dispatch');
    msg = renderReply(errorReply(err, o.requestId));
  }
  try {
    await o.reply.finish(msg);
  } catch (err) {
    o.log.error({ err }, 'could not deliver the reply to Slack');
  }
}

/** Coded errors are written for users; anything else stays in the log. */
function errorReply(err: unknown, requestId: string): Reply {
  if (isSwitchyardError(err)) return { ok: false, summary: err.message, details: [...err.details], code: err.code };
  return {
    ok: false,
    summary: `${ERRORS.E_INTERNAL}: the command may not have completed (request ${requestId})`,
    code: 'E_INTERNAL',
  };
}

/** The command's first word, for log fields. */
export function commandName(text: string): string {
  return text.split(/\s+/, 1)[0]?.toLowerCase() || '(empty)';
}
