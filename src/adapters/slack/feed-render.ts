/**
 * Block Kit for feed batches. A handful of changes is one message, a line each. A burst is
 * a summary ("web: +200 instances by @U1 via `register`, −3 (container died)") with every
 * change listed in its thread. Every message stays within Slack's limits (50 blocks, 3000
 * chars a section, a text fallback) and says what it could not show.
 */
import { changeLines, countLabel, eventLine, summaryLines, plainStyle, type Style } from '../../feed/format.js';
import type { FeedChange, FeedItem } from '../../feed/types.js';
import type { types } from '@slack/bolt';
import { escapeMrkdwn, mention } from './mrkdwn.js';
import { BlockBudget, chunkLines, fallbackText, LIMITS, section, type Block, type SlackMessage } from './render.js';

export interface FeedMessage extends SlackMessage {
  /** Slack message metadata: machine-readable counts for whoever reads the channel's history. */
  metadata?: { event_type: string; event_payload: Record<string, string | number> };
}

/** Up to this many changes are listed in the message itself. */
export const INLINE_MAX = 8;
/** Thread replies per burst; past them the details say how many changes were not listed. */
export const THREAD_MESSAGES_MAX = 5;
export const FEED_EVENT_TYPE = 'switchyard_feed';

/** action_id of each feed button (src/adapters/slack/feed-actions.ts answers the presses). */
export const FEED_ACTIONS = {
  drain: 'switchyard_feed_drain',
  undrain: 'switchyard_feed_undrain',
  deregister: 'switchyard_feed_deregister',
  errors: 'switchyard_feed_apply_errors',
} as const;

/** What an instance button carries: names only; the press acts on the registry as it is then. */
export interface InstanceButtonValue {
  service: string;
  instance: string;
}

/** What "Show errors" carries: whose apply, and the revision its report was written at. */
export interface ApplyButtonValue {
  agent: string;
  revision: string;
}

type Button = types.Button;

export const slackStyle: Style = {
  text: escapeMrkdwn,
  user: mention,
  strong: (s) => `*${s}*`,
  code: (s) => `\`${escapeMrkdwn(s.replace(/`/g, "'"))}\``,
  alert: ':x: ',
};

/** The messages for one batch: the first is top-level, the rest go in its thread. */
export function planFeedMessages(items: readonly FeedItem[]): FeedMessage[] {
  const changes = items.flatMap((i) => (i.change ? [i.change] : []));
  const metadata = metadataOf(changes);
  if (changes.length <= INLINE_MAX) return [inlineMessage(items, changes, metadata)];
  return [summaryMessage(items, changes, metadata), ...detailMessages(items, changes)];
}

function inlineMessage(items: readonly FeedItem[], changes: FeedChange[], metadata: FeedMessage['metadata']): FeedMessage {
  const out = new BlockBudget();
  // Lines without buttons stay together in as few sections as possible; a line with buttons
  // gets its own section with its actions under it.
  let pending: string[] = [];
  const flush = () => {
    if (pending.length) out.sections(pending.join('\n'));
    pending = [];
  };
  let n = 0;
  for (const item of items) {
    const lines = eventLine(item, slackStyle);
    const buttons = item.change ? feedButtons(item.change) : [];
    if (buttons.length === 0) {
      pending.push(...lines);
      continue;
    }
    flush();
    out.sections(lines.join('\n'));
    out.push({ type: 'actions', block_id: `switchyard_feed_${n++}`, elements: buttons });
  }
  flush();
  if (changes.length) out.push(context(revisionLabel(changes)));
  const plain = items.flatMap((i) => eventLine(i, plainStyle)).join('\n');
  return { text: fallbackText(plain), blocks: out.finish(), ...(metadata ? { metadata } : {}) };
}

function summaryMessage(items: readonly FeedItem[], changes: FeedChange[], metadata: FeedMessage['metadata']): FeedMessage {
  const others = items.filter((i) => !i.change);
  const out = new BlockBudget();
  const lines = [...others.flatMap((i) => eventLine(i, slackStyle)), ...summaryLines(changes, slackStyle)];
  out.sections(lines.join('\n'));
  out.push(context(`${countLabel(counted(changes))} · ${revisionLabel(changes)} · details in thread`));
  const plain = [...others.flatMap((i) => eventLine(i, plainStyle)), ...summaryLines(changes, plainStyle)];
  return {
    text: fallbackText(`${plain.join('\n')}\n${countLabel(counted(changes))} — details in thread`),
    blocks: out.finish(),
    ...(metadata ? { metadata } : {}),
  };
}

/** Every change, a line each, packed into as few thread replies as the limits allow. */
function detailMessages(items: readonly FeedItem[], changes: FeedChange[]): FeedMessage[] {
  const lines = items.filter((i) => i.change).flatMap((i) => changeLines(i.change!, slackStyle));
  const chunks = chunkLines(lines, LIMITS.sectionText);
  const perMessage = LIMITS.blocks - 1; // the last slot: what was left out
  const messages: FeedMessage[] = [];
  const total = Math.min(THREAD_MESSAGES_MAX, Math.ceil(chunks.length / perMessage));
  for (let m = 0; m < total; m++) {
    const mine = chunks.slice(m * perMessage, (m + 1) * perMessage);
    const blocks: Block[] = mine.map((c) => section(c.text));
    const label = `details ${total > 1 ? `${m + 1}/${total} ` : ''}of ${countLabel(counted(changes))} (${revisionLabel(changes)})`;
    if (m === total - 1) {
      const unlisted = chunks.slice(total * perMessage).reduce((n, c) => n + c.lines, 0);
      if (unlisted) blocks.push(context(`… ${unlisted} more lines not listed (the counts in the summary are complete)`));
    }
    messages.push({ text: fallbackText(label), blocks });
  }
  return messages;
}

/**
 * Buttons under a feed line (inline messages only: a burst's summary has none). Everyone in
 * the channel sees the same buttons; what the presser may do is decided at press time, by
 * the router, on the registry as it is then.
 */
export function feedButtons(c: FeedChange): Button[] {
  if (c.instance) {
    const value = JSON.stringify({ service: c.instance.service, instance: c.instance.instance } satisfies InstanceButtonValue);
    const state = c.instance.state;
    const out: Button[] = [];
    if (state !== 'drain' && state !== 'maint') out.push(button(FEED_ACTIONS.drain, 'Drain', value));
    if (state !== 'ready') out.push(button(FEED_ACTIONS.undrain, 'Undrain', value));
    out.push(button(FEED_ACTIONS.deregister, 'Deregister', value, 'danger'));
    return out;
  }
  if (c.kind === 'apply' && c.problem && c.apply) {
    return [button(FEED_ACTIONS.errors, 'Show errors', JSON.stringify({ agent: c.apply.agentId, revision: c.revision } satisfies ApplyButtonValue))];
  }
  return [];
}

function button(actionId: string, label: string, value: string, style?: 'danger'): Button {
  return { type: 'button', action_id: actionId, text: { type: 'plain_text', text: label }, value, ...(style ? { style } : {}) };
}

/** Gaps are reported, but they are not changes. */
function counted(changes: FeedChange[]): number {
  return changes.filter((c) => c.kind !== 'gap').length;
}

function context(mrkdwn: string): Block {
  return { type: 'context', elements: [{ type: 'mrkdwn', text: mrkdwn }] };
}

function revisionLabel(changes: FeedChange[]): string {
  if (!changes.length) return '';
  const revs = changes.map((c) => BigInt(c.revision));
  // biome-ignore lint/complexity/useMathMinMax: revisions are BigInts, which Math.min/max refuse
  const lo = revs.reduce((a, b) => (b < a ? b : a));
  // biome-ignore lint/complexity/useMathMinMax: revisions are BigInts, which Math.min/max refuse
  const hi = revs.reduce((a, b) => (b > a ? b : a));
  return lo === hi ? `revision ${lo}` : `revisions ${lo}–${hi}`;
}

function metadataOf(changes: FeedChange[]): FeedMessage['metadata'] {
  if (!changes.length) return undefined;
  const revs = changes.map((c) => BigInt(c.revision));
  return {
    event_type: FEED_EVENT_TYPE,
    event_payload: {
      changes: counted(changes),
      // biome-ignore lint/complexity/useMathMinMax: revisions are BigInts, which Math.min/max refuse
      first_revision: String(revs.reduce((a, b) => (b < a ? b : a))),
      // biome-ignore lint/complexity/useMathMinMax: revisions are BigInts, which Math.min/max refuse
      last_revision: String(revs.reduce((a, b) => (b > a ? b : a))),
    },
  };
}
