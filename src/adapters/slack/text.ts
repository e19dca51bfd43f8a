import { unescapeMrkdwn } from './mrkdwn.js';

/**
 * Turning Slack payloads into the command line the core parses. Slack sends message text
 * escaped and with links wrapped (`db.example.com:5432` may arrive as
 * `<http://db.example.com:5432|db.example.com:5432>`), so both are undone here; the core
 * sees what the user typed.
 */

/** Who the bot is, from auth.test; used to drop our own messages and strip our mention. */
export interface BotIdentity {
  botUserId?: string;
  botId?: string;
}

/** The fields of `message` / `app_mention` events this adapter reads. */
export interface SlackMessageEvent {
  type: string;
  subtype?: string;
  user?: string;
  bot_id?: string;
  text?: string;
  channel?: string;
  channel_type?: string;
  ts?: string;
  thread_ts?: string;
}

export interface MessageCommand {
  text: string;
  /** Slack user ID of the author; the only identity the core ever sees. */
  userId: string;
  /** Conversation ID (C…/G…/D…) to answer in. */
  channel: string;
  ts: string;
  threadTs?: string;
}

/** Normalise command text from any source: unwrap links, unescape, tidy whitespace. */
export function normaliseText(text: string): string {
  return unescapeMrkdwn(unwrapLinks(text))
    .replace(/\u00a0/g, ' ')
    .trim();
}

/** Slash commands: `text` is everything after `/ops`. */
export function commandFromSlash(text: string | undefined): string {
  return normaliseText(text ?? '');
}

/**
 * app_mention: the text after our mention. Usually the mention leads ("@bot status web"); if
 * it sits mid-sentence ("hey @bot status web") the command is what follows it.
 */
export function commandFromMention(text: string, botUserId: string | undefined): string {
  const mention = botUserId ? new RegExp(`<@${escapeRe(botUserId)}(?:\\|[^>]*)?>`) : /^\s*<@[UW][A-Z0-9]+(?:\|[^>]*)?>/;
  const m = mention.exec(text);
  const rest = m ? text.slice(m.index + m[0].length) : text;
  return normaliseText(rest);
}

/** DMs: the whole text, minus a leading mention of the bot that some users type out of habit. */
export function commandFromDm(text: string, botUserId: string | undefined): string {
  if (botUserId) {
    const m = new RegExp(`^\\s*<@${escapeRe(botUserId)}(?:\\|[^>]*)?>`).exec(text);
    if (m) return normaliseText(text.slice(m[0].length));
  }
  return normaliseText(text);
}

/**
 * The command in a DM or mention event, or undefined for anything the bot must not act on:
 * bot messages (including our own replies, which would otherwise loop), edits, joins and
 * every other subtype, and events without a human author.
 */
export function messageCommand(event: SlackMessageEvent, self: BotIdentity): MessageCommand | undefined {
  if (event.subtype !== undefined || event.bot_id !== undefined) return undefined;
  if (!event.user || !event.channel || !event.ts) return undefined;
  if (self.botUserId !== undefined && event.user === self.botUserId) return undefined;
  let text: string;
  if (event.type === 'app_mention') text = commandFromMention(event.text ?? '', self.botUserId);
  else if (event.type === 'message' && event.channel_type === 'im') text = commandFromDm(event.text ?? '', self.botUserId);
  else return undefined;
  return {
    text,
    userId: event.user,
    channel: event.channel,
    ts: event.ts,
    ...(event.thread_ts !== undefined ? { threadTs: event.thread_ts } : {}),
  };
}

/**
 * `<http://x|label>` → label, `<mailto:a@b|a@b>` → a@b, `<http://x>` → http://x. User,
 * channel and special mentions (`<@U…>`, `<#C…>`, `<!here>`) stay as they are: they are IDs.
 */
function unwrapLinks(text: string): string {
  return text.replace(/<((?:https?|mailto|tel):[^|>]*)(?:\|([^>]*))?>/g, (_all, url: string, label?: string) => label ?? url);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Read the fields we use from an event payload without trusting its shape. */
export function pickMessageEvent(raw: unknown): SlackMessageEvent {
  const e = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const str = (k: string): string | undefined => (typeof e[k] === 'string' ? (e[k] as string) : undefined);
  const out: SlackMessageEvent = { type: str('type') ?? '' };
  for (const k of ['subtype', 'user', 'bot_id', 'text', 'channel', 'channel_type', 'ts', 'thread_ts'] as const) {
    const v = str(k);
    if (v !== undefined) out[k] = v;
  }
  return out;
}
