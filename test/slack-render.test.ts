import { describe, expect, it, vi } from 'vitest';
import { AckBacklog } from '../src/adapters/slack/ack.js';
import { escapeMrkdwn, unescapeMrkdwn } from '../src/adapters/slack/mrkdwn.js';
import { LIMITS, renderFeedEvent, renderReply, type Block } from '../src/adapters/slack/render.js';
import { commandFromDm, commandFromMention, commandFromSlash, messageCommand } from '../src/adapters/slack/text.js';
import { MemoryDeduper, requestIdentity } from '../src/adapters/slack/dedupe.js';
import type { Reply } from '../src/core/reply.js';

/** Every piece of text Slack would parse as mrkdwn in these blocks. */
function texts(blocks: Block[]): string[] {
  return blocks.flatMap((b) => {
    if (b.type === 'section') return b.text ? [b.text.text] : [];
    if (b.type === 'context') return b.elements.map((e) => ('text' in e ? e.text : ''));
    return [];
  });
}

describe('escapeMrkdwn', () => {
  it.each([
    ['plain', 'plain'],
    ['a & b', 'a &amp; b'],
    ['<script>', '&lt;script&gt;'],
    ['<!channel>', '&lt;!channel&gt;'],
    ['<@U123>', '&lt;@U123&gt;'],
    ['&lt;', '&amp;lt;'],
    ['*bold* _it_ `code`', '*bold* _it_ `code`'],
    ['', ''],
  ])('%j → %j', (input, out) => {
    expect(escapeMrkdwn(input)).toBe(out);
    expect(unescapeMrkdwn(out)).toBe(input);
  });
});

describe('renderReply', () => {
  const bigTable = (rows: number): Reply => ({
    ok: true,
    summary: 'web: 1000 instances',
    tables: [
      {
        title: 'instances',
        table: {
          header: ['INSTANCE', 'ADDRESS', 'STATE', 'HAPROXY', 'SESSIONS'],
          rows: Array.from({ length: rows }, (_, i) => [`web-${i}`, `10.0.${Math.floor(i / 250)}.${i % 250}:8080`, 'ready', 'UP', String(i % 17)]),
        },
      },
    ],
  });

  /** Checks every limit; returns how many table rows the blocks show. */
  function checkLimits(reply: Reply): { shown: number; blocks: Block[]; text: string } {
    const { text, blocks } = renderReply(reply);
    expect(blocks.length).toBeLessThanOrEqual(LIMITS.blocks);
    for (const t of texts(blocks)) expect(t.length).toBeLessThanOrEqual(LIMITS.sectionText);
    expect(text.length).toBeGreaterThan(0);
    expect(text.length).toBeLessThanOrEqual(LIMITS.fallbackText);
    const code = texts(blocks).filter((t) => t.startsWith('```'));
    for (const c of code) {
      expect(c.endsWith('```')).toBe(true);
      expect(c.split('\n')[1]).toMatch(/^INSTANCE\s+ADDRESS/); // header repeated per chunk
    }
    return { shown: code.reduce((n, c) => n + c.split('\n').length - 3, 0), blocks, text };
  }

  it('keeps a 1,000-row table within 50 blocks and 3000 chars a section, with a text fallback', () => {
    const { shown, blocks, text } = checkLimits(bigTable(1000));
    expect(text.startsWith('web: 1000 instances')).toBe(true);
    expect(text).toMatch(/more lines\)$/);
    expect(texts(blocks).filter((t) => t.startsWith('```')).length).toBeGreaterThan(1);
    // ~45 chars a row: all 1,000 fit in the 49 blocks available.
    expect(shown).toBe(1000);
    expect(texts(blocks).join('\n')).not.toContain('more rows');
  });

  it('truncates a table too big for 50 blocks with a closing "… N more rows" notice', () => {
    const { shown, blocks } = checkLimits(bigTable(5000));
    expect(blocks).toHaveLength(LIMITS.blocks);
    const last = blocks.at(-1)!;
    expect(last.type).toBe('context');
    expect(texts([last])[0]).toBe(`… ${5000 - shown} more rows (use \`status &lt;service&gt;\`)`);
    expect(shown).toBeGreaterThan(2000);
  });

  it('does not truncate a table that fits', () => {
    const { blocks } = renderReply(bigTable(20));
    expect(texts(blocks).join('\n')).not.toContain('more rows');
    expect(texts(blocks).join('\n')).toContain('web-19');
  });

  it('escapes user- and system-supplied text everywhere, code blocks included', () => {
    const evil = '<script>&';
    const { text, blocks } = renderReply({
      ok: false,
      summary: `bad name ${evil}`,
      details: [`detail ${evil}`, '<!channel> ping'],
      tables: [{ title: `title ${evil}`, table: { header: ['NAME'], rows: [[evil], ['```break out```']] } }],
    });
    const all = texts(blocks).join('\n');
    expect(all).not.toContain('<');
    expect(all).not.toContain('>');
    expect(all).not.toMatch(/&(?!amp;|lt;|gt;)/);
    expect(all).toContain('&lt;script&gt;&amp;');
    expect(all).toContain('&lt;!channel&gt;');
    expect(all).not.toMatch(/```break/);
    expect(text).toContain('&lt;script&gt;&amp;');
    expect(text).not.toContain('<');
    expect(text.startsWith('error: bad name')).toBe(true);
  });

  it('splits long details over sections and cuts an endless single line', () => {
    const { blocks } = renderReply({
      ok: true,
      summary: 's',
      details: ['x'.repeat(10_000), ...Array.from({ length: 400 }, (_, i) => `line ${i} ${'y'.repeat(40)}`)],
    });
    expect(blocks.length).toBeLessThanOrEqual(LIMITS.blocks);
    for (const t of texts(blocks)) expect(t.length).toBeLessThanOrEqual(LIMITS.sectionText);
    expect(texts(blocks).join('\n')).toContain('line 399');
  });

  it('never emits a blank section (Slack rejects the message) and shows the header of an empty table', () => {
    const { blocks } = renderReply({ ok: true, summary: 'nothing', details: ['', '  '], tables: [{ table: { header: ['NAME', 'STATE'], rows: [] } }] });
    for (const t of texts(blocks)) expect(t.trim()).not.toBe('');
    expect(texts(blocks)).toContain('```\nNAME  STATE\n```');
  });

  it('never splits an escape entity when cutting', () => {
    const { blocks } = renderReply({ ok: true, summary: '<'.repeat(5000) });
    const first = texts(blocks)[0]!;
    expect(first.length).toBeLessThanOrEqual(LIMITS.sectionText);
    expect(first.replace(/&lt;/g, '')).toBe('…');
  });
});

describe('renderFeedEvent', () => {
  it('escapes the event and has a fallback', () => {
    const { text, blocks } = renderFeedEvent({ kind: 'scale', text: 'web <3> & more', at: '2024-01-01T00:00:00Z' });
    expect(text).toBe('[scale] web &lt;3&gt; &amp; more');
    expect(texts(blocks)).toEqual(['web &lt;3&gt; &amp; more', 'scale · 2024-01-01T00:00:00Z']);
  });
});

describe('command text extraction', () => {
  it('strips the leading bot mention (with or without a label) and whitespace', () => {
    expect(commandFromMention('<@U0BOT> status web', 'U0BOT')).toBe('status web');
    expect(commandFromMention('  <@U0BOT|switchyard>   status  ', 'U0BOT')).toBe('status');
    expect(commandFromMention('hey <@U0BOT> status web', 'U0BOT')).toBe('status web');
    expect(commandFromMention('<@U0BOT> drain web <@U999>', 'U0BOT')).toBe('drain web <@U999>');
    expect(commandFromMention('<@U0BOT>', 'U0BOT')).toBe('');
  });

  it('unwraps links and unescapes in slash command and DM text', () => {
    expect(commandFromSlash('  register web w1 <http://w1.example.com:80|w1.example.com:80> ')).toBe('register web w1 w1.example.com:80');
    expect(commandFromSlash(undefined)).toBe('');
    expect(commandFromDm('<@U0BOT> status', 'U0BOT')).toBe('status');
    expect(commandFromDm('status a&amp;b', 'U0BOT')).toBe('status a&b');
  });

  it('ignores bot messages, subtypes and our own messages', () => {
    const self = { botUserId: 'U0BOT', botId: 'B0BOT' };
    const dm = { type: 'message', channel_type: 'im', channel: 'D1', user: 'U1', text: 'status', ts: '1.1' };
    expect(messageCommand(dm, self)).toEqual({ text: 'status', userId: 'U1', channel: 'D1', ts: '1.1' });
    expect(messageCommand({ ...dm, user: 'U0BOT' }, self)).toBeUndefined();
    expect(messageCommand({ ...dm, bot_id: 'B9' }, self)).toBeUndefined();
    expect(messageCommand({ ...dm, subtype: 'message_changed' }, self)).toBeUndefined();
    expect(messageCommand({ ...dm, subtype: 'channel_join' }, self)).toBeUndefined();
    expect(messageCommand({ ...dm, channel_type: 'channel' }, self)).toBeUndefined();
  });
});

describe('MemoryDeduper', () => {
  it('claims keys once within the TTL, names the original, forgets after, and stays bounded', async () => {
    let now = 0;
    const d = new MemoryDeduper({ ttlMs: 1000, maxEntries: 3, now: () => now });
    const rec = (requestId: string) => ({ requestId, at: new Date(now).toISOString() });
    expect(await d.claim(['trigger/a', 'sig/1'], rec('a'))).toEqual({ duplicate: false });
    // Either identity is enough: a replay under a new trigger_id still carries the signature.
    expect(await d.claim(['trigger/b', 'sig/1'], rec('b'))).toEqual({ duplicate: true, key: 'sig/1', original: rec('a') });
    now = 1001;
    expect(await d.claim(['trigger/a'], rec('a2'))).toEqual({ duplicate: false });
    for (const id of ['c', 'd', 'e', 'f']) await d.claim([`event/${id}`], rec(id));
    expect(d.size).toBe(3);
    expect((await d.claim(['event/f'], rec('f'))).duplicate).toBe(true);
  });
});

describe('requestIdentity', () => {
  it('keys an event by event_id, a command or press by trigger_id, and any request by its signature (hashed)', () => {
    const sig = `v0=${'ab'.repeat(32)}`;
    const event = requestIdentity({ event_id: 'Ev0ABC', type: 'event_callback' }, sig);
    expect(event.requestId).toBe('Ev0ABC');
    expect(event.kind).toBe('event');
    expect(event.keys[0]).toBe('event/Ev0ABC');
    expect(event.keys[1]).toMatch(/^sig\/[0-9a-f]{64}$/);
    expect(event.keys[1]).not.toContain('ab'.repeat(32));
    expect(requestIdentity({ command: '/ops', trigger_id: '123.456.abc' })).toMatchObject({
      requestId: '123.456.abc',
      kind: 'command',
      keys: ['trigger/123.456.abc'],
    });
    expect(requestIdentity({ type: 'block_actions', trigger_id: '9.9' }).kind).toBe('interaction');
    // Ids outside Slack's alphabet never become raw key segments.
    const odd = requestIdentity({ event_id: '../../services/web/x' });
    expect(odd.keys).toEqual([expect.stringMatching(/^event\/h-[0-9a-f]{64}$/)]);
    expect(requestIdentity({}).keys).toEqual([]);
  });
});

describe('AckBacklog', () => {
  it('lets acked work wait until the acks still due are sent, but never longer than its bound', async () => {
    vi.useFakeTimers();
    try {
      const backlog = new AckBacklog();
      let done = false;
      await backlog.cleared(100); // nothing pending: at once
      backlog.enter();
      backlog.enter();
      void backlog.cleared(100).then(() => (done = true));
      backlog.leave();
      await vi.advanceTimersByTimeAsync(0);
      expect(done).toBe(false);
      backlog.leave();
      await vi.advanceTimersByTimeAsync(0);
      expect(done).toBe(true);

      // A backlog that never clears (a steady stream) holds work back for the bound only.
      backlog.enter();
      let bounded = false;
      void backlog.cleared(100).then(() => (bounded = true));
      await vi.advanceTimersByTimeAsync(99);
      expect(bounded).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(bounded).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });
});
