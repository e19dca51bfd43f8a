/**
 * Acting from the feed: the Drain / Undrain / Deregister buttons under a feed line, "Show
 * errors" under a failed HAProxy apply, and the message shortcut "Status of this service".
 *
 * A press is the presser typing the command in that channel: it goes through the router
 * (runCommand), so the ACL, confirmation, approval and the audit record apply unchanged, and
 * the feed attributes the change to the presser. Buttons carry names only, never a state:
 * an old message acts on the registry as it is now, and the command itself refuses what no
 * longer makes sense (an instance already gone) before anything is written.
 */
import type { App, BlockAction, ButtonAction, MessageShortcut, RespondFn } from '@slack/bolt';
import { z } from 'zod';
import type { ApplyResult } from '../../core/apply-result.js';
import type { Caller } from '../../core/caller.js';
import type { Dispatcher } from '../../core/dispatch.js';
import type { Logger } from '../../core/log.js';
import { NAME_RE } from '../../core/names.js';
import type { Reply } from '../../core/reply.js';
import { ackOrCarryOn } from './ack.js';
import { FEED_ACTIONS } from './feed-render.js';
import { escapeMrkdwn } from './mrkdwn.js';
import { ProgressReply } from './progress.js';
import { fallbackText, renderReply, section, type SlackMessage } from './render.js';
import { runCommand, type RunOptions } from './run.js';

/** callback_id of the message shortcut (both app manifests declare it). */
export const STATUS_SHORTCUT = 'status_of_message';

/** response_url takes five posts: progress lines of a press are rationed under that. */
const PRESS_PROGRESS_POSTS = 2;
/** Services one shortcut reports on (one ephemeral reply each, within response_url's five). */
const SHORTCUT_MAX_SERVICES = 3;
/** How much of a message the shortcut reads for service names. */
const SHORTCUT_MAX_TEXT = 40_000;
/** Error lines shown by "Show errors" (HAProxy's own output; a section holds 3000 chars). */
const MAX_ERROR_LINES = 60;

/** What the buttons and the shortcut need besides the router: read-only lookups in etcd. */
export interface FeedActionSources {
  /** Names of the services with at least one registered instance. */
  services(): Promise<string[]>;
  /**
   * The apply result `agent` reported at `revision` (etcd's history of its key); `compacted`
   * when etcd no longer holds that revision, `missing` when the key held nothing then.
   */
  applyReport(agent: string, revision: string): Promise<{ result: ApplyResult } | { missing: 'compacted' | 'missing' | 'unreadable' }>;
  /** Whether the caller may run `command` at all (the ACL's answer, for read-only lookups). */
  may(caller: Caller, command: string): boolean;
}

export interface FeedActionOptions {
  dispatcher: Dispatcher;
  log: Logger;
  /** Keeps a press's work in the app's in-flight set (stop() waits for it). */
  track: (p: Promise<void>) => Promise<void>;
  /** The confirmation buttons of destructive commands (SlackConfirmations.request). */
  confirm?: RunOptions['confirm'];
  /** A channel as the ACL sees it ('dm' for the bot's own DM). */
  resolveChannel: (channelId: string, userId: string) => Promise<string>;
  /** Without them, "Show errors" and the shortcut say they cannot look anything up. */
  sources?: FeedActionSources;
}

const instanceValue = z.object({ service: z.string().regex(NAME_RE), instance: z.string().regex(NAME_RE) });
const applyValue = z.object({ agent: z.string().regex(NAME_RE), revision: z.string().regex(/^\d{1,19}$/) });

const COMMAND_OF = {
  [FEED_ACTIONS.drain]: 'drain',
  [FEED_ACTIONS.undrain]: 'undrain',
  [FEED_ACTIONS.deregister]: 'deregister',
} as const;

/** Register the feed buttons and the message shortcut on the Bolt app. */
export function registerFeedActions(app: App, o: FeedActionOptions): void {
  const log = o.log.child({ component: 'slack-feed-actions' });
  for (const [actionId, command] of Object.entries(COMMAND_OF)) {
    app.action<BlockAction<ButtonAction>>({ type: 'block_actions', action_id: actionId }, async ({ ack, body, action, respond }) => {
      await ackOrCarryOn(ack, log);
      await o.track(pressCommand(o, log, command, action.value, body, respond));
    });
  }
  app.action<BlockAction<ButtonAction>>({ type: 'block_actions', action_id: FEED_ACTIONS.errors }, async ({ ack, body, action, respond }) => {
    await ackOrCarryOn(ack, log);
    await o.track(showErrors(o, log, action.value, body, respond));
  });
  app.shortcut<MessageShortcut>({ type: 'message_action', callback_id: STATUS_SHORTCUT }, async ({ ack, shortcut, respond }) => {
    await ackOrCarryOn(ack, log);
    await o.track(statusOfMessage(o, log, shortcut, respond));
  });
}

/** An ephemeral answer to the presser only; the feed message itself is never replaced. */
function ephemeral(respond: RespondFn, log: Logger) {
  return async (msg: SlackMessage): Promise<void> => {
    try {
      await respond({ response_type: 'ephemeral', replace_original: false, ...msg });
    } catch (err) {
      log.warn({ err }, 'could not answer a feed button or shortcut');
    }
  };
}

function tell(text: string): SlackMessage {
  return { text: fallbackText(text), blocks: [section(escapeMrkdwn(text))] };
}

async function callerOf(o: FeedActionOptions, userId: string, channelId: string | undefined): Promise<Caller> {
  // No channel (should not happen for a message's button): one no channel rule can match.
  return { userId, channel: channelId ? await o.resolveChannel(channelId, userId) : 'unknown', source: 'slack' };
}

/** Drain / Undrain / Deregister: the command, typed by the presser in the feed's channel. */
async function pressCommand(
  o: FeedActionOptions,
  parent: Logger,
  command: string,
  rawValue: string | undefined,
  body: BlockAction<ButtonAction>,
  respond: RespondFn,
): Promise<void> {
  const show = ephemeral(respond, parent);
  const value = parseJson(instanceValue, rawValue);
  if (!value) return show(tell('This button is not one switchyard can read; nothing was changed.'));
  const text = `${command} ${value.service} ${value.instance}`;
  const requestId = body.trigger_id || `feed-${body.container?.message_ts ?? 'press'}`;
  const log = parent.child({ requestId, user: body.user.id, command, via: 'feed-button' });
  const caller = await callerOf(o, body.user.id, body.channel?.id);
  const reply = new ProgressReply(show, log, PRESS_PROGRESS_POSTS);
  await runCommand({ dispatcher: staleAware(o.dispatcher, value), text, caller, requestId, reply, log, ...(o.confirm ? { confirm: o.confirm } : {}) });
}

/** The command's own refusal, saying why a button from an older message can meet a gone instance. */
function staleAware(dispatcher: Dispatcher, v: z.infer<typeof instanceValue>): Dispatcher {
  return {
    async dispatch(req) {
      const reply = await dispatcher.dispatch(req);
      if (reply.code !== 'E_NOT_FOUND') return reply;
      return {
        ...reply,
        summary: `${v.service}/${v.instance} is not registered any more: the button acts on the registry as it is now, not as the feed line saw it; nothing was changed`,
      };
    },
  };
}

/** "Show errors": the failed apply's error lines, from the report the agent wrote then. */
async function showErrors(o: FeedActionOptions, log: Logger, rawValue: string | undefined, body: BlockAction<ButtonAction>, respond: RespondFn): Promise<void> {
  const show = ephemeral(respond, log);
  const value = parseJson(applyValue, rawValue);
  if (!value) return show(tell('This button is not one switchyard can read.'));
  if (!o.sources) return show(tell('This switchyard cannot look up apply reports.'));
  const caller = await callerOf(o, body.user.id, body.channel?.id);
  // An apply report is what `status` shows: the same right reads it here.
  if (!o.sources.may(caller, 'status'))
    return show(renderReply({ ok: false, summary: 'you may not run status here, which apply reports are part of', code: 'E_DENIED' }));
  let found: Awaited<ReturnType<FeedActionSources['applyReport']>>;
  try {
    found = await o.sources.applyReport(value.agent, value.revision);
  } catch (err) {
    log.warn({ err }, 'could not read an apply report');
    return show(tell('Could not reach etcd to read that apply report; try again in a moment.'));
  }
  if ('missing' in found) {
    const why = {
      compacted: 'etcd has compacted that revision away',
      missing: 'the agent had no report at that revision',
      unreadable: 'the report stored then is not readable',
    }[found.missing];
    return show(tell(`The report of haproxy ${value.agent} at revision ${value.revision} is not available: ${why}. \`status\` shows each agent's last apply.`));
  }
  return show(applyErrorsMessage(value.agent, value.revision, found.result));
}

export function applyErrorsMessage(agent: string, revision: string, r: ApplyResult): SlackMessage {
  const head = `haproxy ${agent}, ${r.method} apply at ${r.at} (revision ${revision}): ${r.ok ? 'succeeded' : `failed${r.failure ? ` (${r.failure})` : ''}`}`;
  const errors = r.error ?? [];
  const warnings = (r.warnings ?? []).map((w) => `warning: ${w}`);
  const lines = [...errors, ...warnings];
  const shown = lines.slice(0, MAX_ERROR_LINES);
  const body: Reply = { ok: r.ok, summary: head, details: shown.length ? shown : ['no error lines were reported'] };
  const msg = renderReply(body);
  if (lines.length > shown.length) msg.blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `… ${lines.length - shown.length} more lines` }] });
  return msg;
}

/** The shortcut: `status <service>` for each registered service the message names. */
async function statusOfMessage(o: FeedActionOptions, parent: Logger, shortcut: MessageShortcut, respond: RespondFn): Promise<void> {
  const show = ephemeral(respond, parent);
  if (!o.sources) return show(tell('This switchyard cannot look up services.'));
  let registered: string[];
  try {
    registered = await o.sources.services();
  } catch (err) {
    parent.warn({ err }, 'could not list the registered services');
    return show(tell('Could not reach etcd to list the registered services; try again in a moment.'));
  }
  const named = namedServices(messageText(shortcut.message), registered);
  if (named.length === 0) return show(tell('This message names no registered service, so there is no status to show.'));
  const caller = await callerOf(o, shortcut.user.id, shortcut.channel?.id);
  const shown = named.slice(0, SHORTCUT_MAX_SERVICES);
  for (const [i, service] of shown.entries()) {
    const requestId = `${shortcut.trigger_id}-${i}`;
    const log = parent.child({ requestId, user: shortcut.user.id, command: 'status', via: 'message-shortcut' });
    // One post each: progress would eat into response_url's five.
    await runCommand({ dispatcher: o.dispatcher, text: `status ${service}`, caller, requestId, reply: new ProgressReply(show, log, 0), log });
  }
  if (named.length > shown.length) {
    await show(tell(`The message also names ${named.slice(shown.length).join(', ')}: run status for those.`));
  }
}

/** Registered service names that appear as words in `text`, in order of first mention. */
export function namedServices(text: string, registered: readonly string[]): string[] {
  const known = new Set(registered);
  const found: string[] = [];
  // Names are lowercase; "Web" at the start of a sentence is still web. A trailing dot or dash
  // ends a sentence, not a name.
  for (const m of text.toLowerCase().matchAll(/[a-z0-9][a-z0-9_.-]*/g)) {
    const word = m[0].replace(/[._-]+$/, '');
    if (known.has(word) && !found.includes(word)) found.push(word);
  }
  return found;
}

/** The words of a message: its text, and the text of its blocks and attachments (bot messages often have only those). */
export function messageText(message: unknown): string {
  const parts: string[] = [];
  let size = 0;
  const walk = (v: unknown, depth: number): void => {
    if (size > SHORTCUT_MAX_TEXT || depth > 12 || v === null || typeof v !== 'object') return;
    if (Array.isArray(v)) {
      for (const x of v) walk(x, depth + 1);
      return;
    }
    for (const [k, x] of Object.entries(v)) {
      if ((k === 'text' || k === 'fallback' || k === 'pretext' || k === 'title') && typeof x === 'string') {
        parts.push(x);
        size += x.length;
      } else if (k === 'blocks' || k === 'attachments' || k === 'elements' || k === 'fields' || k === 'text') {
        walk(x, depth + 1);
      }
    }
  };
  walk(message, 0);
  return parts.join('\n').slice(0, SHORTCUT_MAX_TEXT);
}

function parseJson<T>(schema: z.ZodType<T>, raw: string | undefined): T | undefined {
  try {
    const r = schema.safeParse(JSON.parse(raw ?? ''));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}
