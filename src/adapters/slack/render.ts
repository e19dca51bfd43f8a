import type { types } from '@slack/bolt';
import type { FeedEvent } from '../../core/feed.js';
import { formatTable, replyToText, type Reply, type Table } from '../../core/reply.js';
import { escapeMrkdwn } from './mrkdwn.js';

export type Block = types.KnownBlock;

/** What chat.postMessage / chat.update / respond() take. */
export interface SlackMessage {
  /** Plain fallback for notifications and clients without Block Kit; escaped, never formatted. */
  text: string;
  blocks: Block[];
}

/** Slack's hard limits (messages over them are rejected, not truncated). */
export const LIMITS = { blocks: 50, sectionText: 3000, fallbackText: 3000 } as const;

const FENCE = '```';

export function renderReply(reply: Reply): SlackMessage {
  const out = new BlockBudget();
  const summary = escapeMrkdwn(reply.summary);
  out.sections(reply.ok ? summary : `:x: ${summary}`);
  if (reply.details?.length) out.sections(reply.details.map(escapeMrkdwn).join('\n'));
  for (const { title, table } of reply.tables ?? []) {
    if (title && !out.push(section(`*${escapeMrkdwn(title)}*`))) {
      out.droppedRows += table.rows.length;
      continue;
    }
    for (const chunk of tableChunks(table)) {
      if (!out.push(section(chunk.text))) out.droppedRows += chunk.rows;
    }
  }
  return { text: fallbackText(replyToText(reply)), blocks: out.finish() };
}

export function renderFeedEvent(event: FeedEvent): SlackMessage {
  const out = new BlockBudget();
  out.sections(escapeMrkdwn(event.text));
  const meta = [event.kind, event.at]
    .filter((s): s is string => !!s)
    .map(escapeMrkdwn)
    .join(' · ');
  if (meta) out.push({ type: 'context', elements: [{ type: 'mrkdwn', text: meta }] });
  return { text: fallbackText(`[${event.kind}] ${event.text}`), blocks: out.finish() };
}

/**
 * Collects blocks under Slack's 50-block cap, always keeping the last slot for a notice
 * that says what was left out — a silently shortened status listing would be misread
 * as the whole truth.
 */
export class BlockBudget {
  private readonly blocks: Block[] = [];
  droppedRows = 0;
  droppedLines = 0;

  push(block: Block): boolean {
    if (this.blocks.length >= LIMITS.blocks - 1) return false;
    this.blocks.push(block);
    return true;
  }

  /** Escaped mrkdwn, split over as many sections as the 3000-char limit needs. */
  sections(escaped: string): void {
    for (const chunk of chunkLines(escaped.split('\n'), LIMITS.sectionText)) {
      // Slack rejects the whole message over a blank section text.
      if (!chunk.text.trim()) continue;
      if (!this.push(section(chunk.text))) this.droppedLines += chunk.lines;
    }
  }

  finish(): Block[] {
    const parts: string[] = [];
    if (this.droppedRows) parts.push(`${this.droppedRows} more ${this.droppedRows === 1 ? 'row' : 'rows'}`);
    if (this.droppedLines) parts.push(`${this.droppedLines} more ${this.droppedLines === 1 ? 'line' : 'lines'}`);
    if (parts.length) {
      const hint = this.droppedRows ? ` (use \`${escapeMrkdwn('status <service>')}\`)` : '';
      this.blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `… ${parts.join(', ')}${hint}` }] });
    }
    return this.blocks;
  }
}

export function section(text: string): Block {
  return { type: 'section', text: { type: 'mrkdwn', text } };
}

/**
 * A table as code blocks of at most 3000 chars each, the header repeated in every chunk so
 * each one reads on its own.
 */
function tableChunks(table: Table): { text: string; rows: number }[] {
  const [rawHeader = '', ...rawRows] = formatTable(table);
  const overhead = FENCE.length * 2 + 2; // "```\n" … "\n```"
  const header = codeLine(rawHeader, 1000);
  const room = LIMITS.sectionText - overhead - header.length - 1;
  const rows = rawRows.map((r) => codeLine(r, room));
  if (!rows.length) return [{ text: `${FENCE}\n${header}\n${FENCE}`, rows: 0 }];
  return chunkLines(rows, room).map((c) => ({ text: `${FENCE}\n${header}\n${c.text}\n${FENCE}`, rows: c.lines }));
}

/**
 * One escaped line of a code block, cut to `max` chars. A run of backticks in a value would
 * close the fence early, so a zero-width space is slipped between them.
 */
function codeLine(raw: string, max: number): string {
  return truncateEscaped(raw.replace(/`(?=`)/g, '`\u200b'), max);
}

/** Escape `raw`, keeping the result within `max` chars without splitting an entity. */
function truncateEscaped(raw: string, max: number): string {
  const full = escapeMrkdwn(raw);
  if (full.length <= max) return full;
  let out = '';
  for (const ch of raw) {
    const e = escapeMrkdwn(ch);
    if (out.length + e.length > max - 1) break;
    out += e;
  }
  return `${out}…`;
}

/** Pack escaped lines into chunks of at most `max` chars; a longer line is cut, not dropped. */
export function chunkLines(lines: string[], max: number): { text: string; lines: number }[] {
  const chunks: { text: string; lines: number }[] = [];
  let cur: string[] = [];
  let len = 0;
  for (const raw of lines) {
    const line = raw.length > max ? cutEscaped(raw, max) : raw;
    const add = (cur.length ? 1 : 0) + line.length;
    if (cur.length && len + add > max) {
      chunks.push({ text: cur.join('\n'), lines: cur.length });
      cur = [];
      len = 0;
    }
    len += (cur.length ? 1 : 0) + line.length;
    cur.push(line);
  }
  if (cur.length) chunks.push({ text: cur.join('\n'), lines: cur.length });
  return chunks;
}

/** Cut already-escaped text to `max` chars (ellipsis included), backing off a half entity. */
function cutEscaped(s: string, max: number): string {
  let end = max - 1;
  const amp = s.lastIndexOf('&', end);
  if (amp >= 0 && amp > end - 5 && s.indexOf(';', amp) >= end) end = amp;
  return `${s.slice(0, end)}…`;
}

/**
 * The top-level `text`: the shell's plain rendering, escaped (Slack parses it as mrkdwn, so
 * an unescaped "<!channel>" in an error message would ping a channel), cut at a line break.
 */
export function fallbackText(plain: string): string {
  const lines = escapeMrkdwn(plain).split('\n');
  const kept: string[] = [];
  let len = 0;
  for (const [i, line] of lines.entries()) {
    const add = (kept.length ? 1 : 0) + line.length;
    if (len + add > LIMITS.fallbackText - 40) {
      // A single over-long first line is cut rather than leaving the fallback empty.
      const cut = kept.length === 0;
      if (cut) kept.push(cutEscaped(line, LIMITS.fallbackText - 40));
      const more = lines.length - i - (cut ? 1 : 0);
      if (more) kept.push(`… (${more} more ${more === 1 ? 'line' : 'lines'})`);
      break;
    }
    kept.push(line);
    len += add;
  }
  return kept.join('\n');
}

/** An interim "still working" message for long commands. */
export function renderProgress(text: string): SlackMessage {
  const out = new BlockBudget();
  out.sections(`:hourglass_flowing_sand: ${escapeMrkdwn(text)}`);
  return { text: fallbackText(text), blocks: out.finish() };
}
