import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { createSlackApp, type SlackApp } from '../src/adapters/slack/app.js';
import { createSlackClient, feedClientSettings } from '../src/adapters/slack/client.js';
import { SlackFeedSink } from '../src/adapters/slack/feed-sink.js';
import type { DispatchRequest, Dispatcher } from '../src/core/dispatch.js';
import { createLogger } from '../src/core/log.js';
import type { Reply } from '../src/core/reply.js';
import { until } from './helpers/feed.js';
import { freePort } from './helpers/net.js';
import { newTs, postEvent, postSlashCommand, resend, signRequest, startSlackStandIn, type SlackStandIn } from './helpers/slack.js';

const SECRET = 'test-signing-secret';
const BOT_TOKEN = 'xoxb-test-bot-token';

/** Records every request; answers after `delayMs`, with `reply`, or throws `error`. */
class FakeDispatcher implements Dispatcher {
  calls: DispatchRequest[] = [];
  finished = 0;
  delayMs = 0;
  progress: string[] = [];
  error: Error | undefined;
  /** While set, dispatches wait here before they finish (see hold()). */
  gate: Promise<void> | undefined;
  reply: (req: DispatchRequest) => Reply = (req) => ({ ok: true, summary: `did ${req.text}` });

  /** Dispatches started from now on do not finish until the returned function is called. */
  hold(): () => void {
    let release!: () => void;
    this.gate = new Promise<void>((r) => (release = r));
    return release;
  }

  async dispatch(req: DispatchRequest): Promise<Reply> {
    this.calls.push(req);
    for (const line of this.progress) {
      req.onProgress?.(line);
      await sleep(5);
    }
    await sleep(this.delayMs);
    await this.gate;
    this.finished++;
    if (this.error) throw this.error;
    return this.reply(req);
  }

  callsFor(text: string): DispatchRequest[] {
    return this.calls.filter((c) => c.text === text);
  }
}

describe('Slack adapter (HTTP receiver against a Web API stand-in)', () => {
  let standIn: SlackStandIn;
  let slack: SlackApp;
  let dispatcher: FakeDispatcher;
  let base: string;
  let events: string;
  let healthy = true;
  const logs: string[] = [];

  beforeAll(async () => {
    standIn = await startSlackStandIn();
    dispatcher = new FakeDispatcher();
    slack = createSlackApp({
      dispatcher,
      log: createLogger({ level: 'trace', destination: { write: (s: string) => void logs.push(s) } }),
      botToken: BOT_TOKEN,
      signingSecret: SECRET,
      apiUrl: standIn.apiUrl,
      port: 0,
      host: '127.0.0.1',
      metricsRegistry: new Registry(),
      health: async () => ({ ok: healthy, details: { etcd: healthy ? 'up' : 'down' } }),
    });
    const { port } = await slack.start();
    base = `http://127.0.0.1:${port}`;
    events = `${base}/slack/events`;
  });

  afterAll(async () => {
    await slack?.stop();
    await standIn?.close();
  });

  beforeEach(() => {
    dispatcher.calls = [];
    dispatcher.finished = 0;
    dispatcher.delayMs = 0;
    dispatcher.progress = [];
    dispatcher.error = undefined;
    dispatcher.gate = undefined;
  });

  it('verifies the bot token with auth.test at start-up, against SLACK_API_URL', () => {
    expect(standIn.api('auth.test').length).toBeGreaterThanOrEqual(1);
    expect(standIn.api('auth.test')[0]!.token).toBe(BOT_TOKEN);
  });

  /** A positive sign of processing: a fresh, valid DM that has been answered. */
  const processedSince = async () => {
    const text = `status marker-${Math.random().toString(36).slice(2)}`;
    await postEvent(events, SECRET, { type: 'message', channel_type: 'im', channel: 'D0MARK', user: 'U123', text, ts: newTs() });
    await standIn.waitFor((c) => c.method === 'chat.postMessage' && c.body.text === `did ${text}`, 5000);
  };
  const nonMarker = () => dispatcher.calls.filter((c) => !c.text.startsWith('status marker-'));

  it('refuses a bad signature with 401 and dispatches nothing', async () => {
    const res = await postSlashCommand(
      events,
      SECRET,
      { text: 'status forged', user_id: 'U1', channel_id: 'C0OPS', response_url: standIn.responseUrl() },
      { secret: 'not-the-secret' },
    );
    expect(res.status).toBe(401);
    await processedSince();
    expect(nonMarker()).toHaveLength(0);
    expect(logs.some((l) => l.includes('Slack request refused (401): the signature does not match'))).toBe(true);
  });

  it.each([
    ['6 minutes old (a replay)', -6 * 60, 'in the past'],
    ['6 minutes ahead', 6 * 60, 'in the future'],
    ['1 hour ahead', 60 * 60, 'in the future'],
  ])('refuses a request signed %s with 401, saying which bound and by how much', async (_label, offsetSec, bound) => {
    const timestamp = Math.floor(Date.now() / 1000) + offsetSec;
    const text = `status skewed${offsetSec}`;
    const logsBefore = logs.length;
    const res = await postEvent(events, SECRET, { type: 'message', channel_type: 'im', channel: 'D0DM', user: 'U1', text, ts: newTs() }, { timestamp });
    expect(res.status).toBe(401);
    const slash = await postSlashCommand(events, SECRET, { text, user_id: 'U1', channel_id: 'C0OPS', response_url: standIn.responseUrl() }, { timestamp });
    expect(slash.status).toBe(401);
    await processedSince();
    expect(dispatcher.callsFor(text)).toHaveLength(0);
    const line = logs
      .slice(logsBefore)
      .find((l) => l.includes(`Slack request refused (401): the request timestamp is`) && l.includes(bound) && l.includes('beyond the 300 s bound'));
    expect(line).toBeDefined();
    // By how much: the skew in seconds, within the second or two this test takes.
    const skew = (JSON.parse(line!) as { skewSec: number }).skewSec;
    expect(Math.abs(skew + offsetSec)).toBeLessThanOrEqual(5);
  });

  it.each([
    ['4 minutes old', -4 * 60],
    ['4 minutes ahead', 4 * 60],
  ])('accepts a request signed %s', async (_label, offsetSec) => {
    const id = `skew-ok${offsetSec}`;
    const res = await postSlashCommand(
      events,
      SECRET,
      { text: `status within${offsetSec}`, user_id: 'U1', channel_id: 'C0OPS', response_url: standIn.responseUrl(id) },
      { timestamp: Math.floor(Date.now() / 1000) + offsetSec },
    );
    expect(res.status).toBe(200);
    await standIn.waitFor((c) => c.kind === 'response' && c.method === id && c.body.text === `did status within${offsetSec}`, 5000);
  });

  it('refuses a request without the signing headers (401) and an oversized body (413)', async () => {
    const unsigned = await fetch(events, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"type":"event_callback"}' });
    expect(unsigned.status).toBe(401);
    const huge = 'x'.repeat(4 * 1024 * 1024 + 1);
    const big = await fetch(events, { method: 'POST', headers: { 'content-type': 'application/json', ...signRequest(SECRET, huge) }, body: huge });
    expect(big.status).toBe(413);
    expect(logs.some((l) => l.includes('X-Slack-Request-Timestamp is missing'))).toBe(true);
  });

  it('answers Slack’s URL verification challenge (signed)', async () => {
    const body = JSON.stringify({ token: 'legacy', challenge: 'c-123', type: 'url_verification' });
    const res = await fetch(events, { method: 'POST', headers: { 'content-type': 'application/json', ...signRequest(SECRET, body) }, body });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ challenge: 'c-123' });
  });

  it('acknowledges a replayed slash command (same bytes) and runs it once, logging the original request id', async () => {
    const id = 'replayed-slash';
    const first = await postSlashCommand(events, SECRET, {
      text: 'scale web 4',
      user_id: 'U123',
      channel_id: 'C0OPS',
      response_url: standIn.responseUrl(id),
      trigger_id: '111.222.replay',
    });
    expect(first.status).toBe(200);
    await standIn.waitFor((c) => c.kind === 'response' && c.method === id && c.body.text === 'did scale web 4', 5000);
    const again = await resend(first.request);
    expect(again.status).toBe(200);
    expect(again.text).toBe('');
    await processedSince();
    expect(dispatcher.callsFor('scale web 4')).toHaveLength(1);
    const dup = logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === 'duplicate Slack request acknowledged, not executed' && l.kind === 'command');
    expect(dup).toMatchObject({ level: 30, requestId: '111.222.replay', duplicateOf: '111.222.replay' });
  });

  it('acks a slash command before a slow dispatch finishes, then answers at the response_url', async () => {
    // The dispatch cannot finish until released below: an ack that waited for it never comes.
    const release = dispatcher.hold();
    const id = 'slash-slow';
    let res: Awaited<ReturnType<typeof postSlashCommand>>;
    try {
      res = await postSlashCommand(events, SECRET, { text: 'status web', user_id: 'U123', channel_id: 'C0OPS', response_url: standIn.responseUrl(id) });
    } finally {
      release();
    }
    expect(res.status).toBe(200);
    expect(dispatcher.calls.map((c) => c.text)).toEqual(['status web']);
    expect(dispatcher.finished).toBe(0);
    expect(res.json).toMatchObject({ response_type: 'ephemeral' });
    expect((res.json as { text: string }).text).toContain('running `status web`');

    const final = await standIn.waitFor((c) => c.kind === 'response' && c.method === id, 5000);
    expect(dispatcher.finished).toBe(1);
    expect(final.body).toMatchObject({ replace_original: true, text: 'did status web' });
    expect(JSON.stringify(final.body.blocks)).toContain('did status web');
    expect(dispatcher.calls[0]!.caller).toEqual({ userId: 'U123', channel: 'C0OPS', source: 'slack' });
    expect(dispatcher.calls[0]!.requestId).toBeTruthy();
  });

  it('treats /ops in the user’s DM with the bot as channel "dm" (and another D… as itself)', async () => {
    standIn.on('conversations.info', (c) =>
      c.body.channel === 'D0BOTDM'
        ? { channel: { id: 'D0BOTDM', is_im: true, user: 'U123' } }
        : { status: 200, body: { ok: false, error: 'channel_not_found' } },
    );
    onTestFinished(() => standIn.on('conversations.info', (c) => ({ channel: { id: c.body.channel } })));
    await postSlashCommand(events, SECRET, {
      text: 'status in-dm',
      user_id: 'U123',
      channel_id: 'D0BOTDM',
      channel_name: 'directmessage',
      response_url: standIn.responseUrl('dm1'),
    });
    await postSlashCommand(events, SECRET, {
      text: 'status other-dm',
      user_id: 'U123',
      channel_id: 'D0OTHER',
      channel_name: 'directmessage',
      response_url: standIn.responseUrl('dm2'),
    });
    await standIn.waitFor((c) => c.method === 'dm1');
    await standIn.waitFor((c) => c.method === 'dm2');
    expect(dispatcher.callsFor('status in-dm')[0]!.caller.channel).toBe('dm');
    expect(dispatcher.callsFor('status other-dm')[0]!.caller.channel).toBe('D0OTHER');
  });

  it('answers a DM with chat.postMessage in that DM, caller channel "dm"', async () => {
    const ts = newTs();
    const res = await postEvent(events, SECRET, { type: 'message', channel_type: 'im', channel: 'D0DM', user: 'U123', text: 'status dm-web', ts });
    expect(res.status).toBe(200);
    const post = await standIn.waitFor((c) => c.method === 'chat.postMessage' && c.body.channel === 'D0DM' && c.body.text === 'did status dm-web');
    expect(post.token).toBe(BOT_TOKEN);
    expect(post.body.thread_ts).toBeUndefined();
    const call = dispatcher.callsFor('status dm-web')[0]!;
    expect(call.caller).toEqual({ userId: 'U123', channel: 'dm', source: 'slack' });
    expect(call.requestId).toBe(res.eventId);
  });

  it('strips the mention from app_mention, passes the channel ID and replies in thread', async () => {
    const ts = newTs();
    await postEvent(events, SECRET, { type: 'app_mention', channel: 'C0OPS', user: 'U123', text: '<@U0BOT>   status mention-web', ts });
    const post = await standIn.waitFor((c) => c.method === 'chat.postMessage' && c.body.text === 'did status mention-web');
    expect(post.body).toMatchObject({ channel: 'C0OPS', thread_ts: ts });
    expect(dispatcher.callsFor('status mention-web')[0]!.caller).toEqual({ userId: 'U123', channel: 'C0OPS', source: 'slack' });
  });

  it('decodes Slack’s escaping and link wrapping before dispatch', async () => {
    await postEvent(events, SECRET, {
      type: 'message',
      channel_type: 'im',
      channel: 'D0DM',
      user: 'U123',
      text: 'register db db-1 <http://db.example.com:5432|db.example.com:5432> --note a&amp;b&lt;c&gt;',
      ts: newTs(),
    });
    await standIn.waitFor((c) => c.method === 'chat.postMessage' && String(c.body.text).startsWith('did register db'));
    expect(dispatcher.calls.at(-1)!.text).toBe('register db db-1 db.example.com:5432 --note a&b<c>');
  });

  it('executes a retried event (same event_id, X-Slack-Retry-Num) once', async () => {
    const event = { type: 'message', channel_type: 'im', channel: 'D0DM', user: 'U123', text: 'scale web 3', ts: newTs() };
    const first = await postEvent(events, SECRET, event);
    await standIn.waitFor((c) => c.method === 'chat.postMessage' && c.body.text === 'did scale web 3');
    const retry = await postEvent(events, SECRET, event, { eventId: first.eventId, retryNum: 1, retryReason: 'http_timeout' });
    const retry2 = await postEvent(events, SECRET, event, { eventId: first.eventId, retryNum: 2 });
    expect([first.status, retry.status, retry2.status]).toEqual([200, 200, 200]);
    await processedSince();
    expect(dispatcher.callsFor('scale web 3')).toHaveLength(1);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/switchyard_slack_duplicate_requests_total\{kind="event"\} 2/);
  });

  it('ignores its own messages, other bots, edits and joins', async () => {
    const im = { type: 'message', channel_type: 'im', channel: 'D0DM' };
    await postEvent(events, SECRET, { ...im, user: 'U0BOT', text: 'status self', ts: newTs() });
    await postEvent(events, SECRET, { ...im, subtype: 'bot_message', bot_id: 'B0BOT', text: 'status self-bot', ts: newTs() });
    await postEvent(events, SECRET, { ...im, bot_id: 'B0OTHER', user: 'U0OTHERBOT', text: 'status other-bot', ts: newTs() });
    await postEvent(events, SECRET, { ...im, subtype: 'message_changed', message: { user: 'U123', text: 'status edited' }, ts: newTs() });
    await postEvent(events, SECRET, {
      type: 'message',
      channel_type: 'channel',
      subtype: 'channel_join',
      channel: 'C0OPS',
      user: 'U123',
      text: 'joined',
      ts: newTs(),
    });
    // A plain channel message is not a command either (only DMs and mentions are).
    await postEvent(events, SECRET, { type: 'message', channel_type: 'channel', channel: 'C0OPS', user: 'U123', text: 'status chatter', ts: newTs() });
    await processedSince();
    expect(nonMarker()).toHaveLength(0);
  });

  it('posts progress once, updates that message, and ends with the result in it', async () => {
    dispatcher.progress = ['starting 3 containers', '1/3 up', '2/3 up', '3/3 up'];
    dispatcher.delayMs = 50;
    await postEvent(events, SECRET, { type: 'app_mention', channel: 'C0PROG', user: 'U123', text: '<@U0BOT> scale api 3', ts: newTs() });
    const final = await standIn.waitFor((c) => c.method === 'chat.update' && c.body.text === 'did scale api 3');
    const posts = standIn.api('chat.postMessage').filter((c) => c.body.channel === 'C0PROG');
    expect(posts).toHaveLength(1);
    expect(posts[0]!.body.text).toBe('starting 3 containers');
    const updates = standIn.api('chat.update').filter((c) => c.body.channel === 'C0PROG');
    expect(updates.at(-1)).toBe(final);
    expect(new Set(updates.map((u) => u.body.ts))).toEqual(new Set([final.body.ts]));
  });

  it('shows a slash command’s progress and result by replacing its one ephemeral message', async () => {
    dispatcher.progress = ['starting 3 containers', '1/3 up', '2/3 up', '3/3 up', 'registering'];
    dispatcher.delayMs = 50;
    const id = 'slash-progress';
    await postSlashCommand(events, SECRET, { text: 'scale api 3', user_id: 'U123', channel_id: 'C0OPS', response_url: standIn.responseUrl(id) });
    await standIn.waitFor((c) => c.kind === 'response' && c.method === id && c.body.text === 'did scale api 3', 5000);
    const posts = standIn.responses(id);
    // response_url takes 5 posts: at most 3 progress lines, then the result, always in place.
    expect(posts.length).toBeGreaterThanOrEqual(2);
    expect(posts.length).toBeLessThanOrEqual(4);
    expect(posts.every((p) => p.body.replace_original === true && p.body.response_type === 'ephemeral')).toBe(true);
    expect(posts.at(-1)!.body.text).toBe('did scale api 3');
    // The first line shows at once; later ones are the newest at each update, in order, none twice.
    const shown = posts.slice(0, -1).map((p) => String(p.body.text));
    expect(shown[0]).toBe('starting 3 containers');
    const order = shown.map((t) => dispatcher.progress.indexOf(t));
    expect(
      order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1]!)),
      `progress shown: ${JSON.stringify(shown)}`,
    ).toBe(true);
  });

  it('posts a fresh reply when Slack refuses to update the progress message', async () => {
    standIn.on('chat.update', () => ({ status: 200, body: { ok: false, error: 'message_not_found' } }));
    try {
      dispatcher.progress = ['working'];
      dispatcher.delayMs = 50;
      await postEvent(events, SECRET, { type: 'app_mention', channel: 'C0UPD', user: 'U123', text: '<@U0BOT> scale api 2', ts: newTs() });
      await standIn.waitFor((c) => c.method === 'chat.postMessage' && c.body.channel === 'C0UPD' && c.body.text === 'did scale api 2');
      expect(
        standIn
          .api('chat.postMessage')
          .filter((c) => c.body.channel === 'C0UPD')
          .map((c) => c.body.text),
      ).toEqual(['working', 'did scale api 2']);
    } finally {
      standIn.on('chat.update', (c) => ({ channel: c.body.channel, ts: c.body.ts, text: c.body.text }));
    }
  });

  it('logs a failing dispatch and answers with a generic error', async () => {
    dispatcher.error = new Error('boom: etcd client exploded');
    await postEvent(events, SECRET, { type: 'message', channel_type: 'im', channel: 'D0ERR', user: 'U123', text: 'status broken', ts: newTs() });
    const post = await standIn.waitFor((c) => c.method === 'chat.postMessage' && c.body.channel === 'D0ERR');
    expect(post.body.text).toMatch(/^error: internal error/);
    expect(post.body.text).not.toContain('boom');
    expect(logs.some((l) => l.includes('boom: etcd client exploded') && l.includes('"requestId"'))).toBe(true);
  });

  it('serves /healthz (200 / 503) and /metrics beside /slack/events', async () => {
    let res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, details: { slack: 'ok', etcd: 'up' } });
    healthy = false;
    res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ ok: false });
    healthy = true;
    res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    expect(await res.text()).toContain('# TYPE switchyard_slack_duplicate_requests_total counter');
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });

  it('called auth.test once at start-up, not once per event', () => {
    expect(standIn.api('auth.test')).toHaveLength(1);
  });

  it('never writes the bot token or signing secret to the log', () => {
    const all = logs.join('');
    expect(all.length).toBeGreaterThan(0);
    expect(all).not.toContain(BOT_TOKEN);
    expect(all).not.toContain(SECRET);
  });
});

describe('Slack adapter start-up', () => {
  it('fails start() promptly when auth.test rejects the token', async () => {
    const standIn = await startSlackStandIn();
    try {
      standIn.on('auth.test', () => ({ status: 200, body: { ok: false, error: 'invalid_auth' } }));
      const app = createSlackApp({
        dispatcher: new FakeDispatcher(),
        log: createLogger({ level: 'silent' }),
        botToken: 'xoxb-revoked',
        signingSecret: SECRET,
        apiUrl: standIn.apiUrl,
        port: 0,
        host: '127.0.0.1',
        metricsRegistry: new Registry(),
        health: async () => ({ ok: true }),
      });
      await expect(app.start()).rejects.toThrow(/invalid_auth/);
      await app.stop();
    } finally {
      await standIn.close();
    }
  });
});

describe('Slack adapter while Slack is unreachable', () => {
  it('serves /healthz (503, with the reason) at once, retries auth.test with a warning naming it, then connects', async () => {
    const apiPort = await freePort();
    const apiUrl = `http://127.0.0.1:${apiPort}/api/`;
    const logs: string[] = [];
    const dispatcher = new FakeDispatcher();
    const app = createSlackApp({
      dispatcher,
      log: createLogger({ level: 'info', destination: { write: (s: string) => void logs.push(s) } }),
      botToken: BOT_TOKEN,
      signingSecret: SECRET,
      apiUrl,
      port: 0,
      host: '127.0.0.1',
      metricsRegistry: new Registry(),
      health: async () => ({ ok: true, details: { etcd: 'ok' } }),
      connectBackoff: { minMs: 50, maxMs: 200 },
    });
    let standIn: SlackStandIn | undefined;
    try {
      const { port } = await app.listen();
      const base = `http://127.0.0.1:${port}`;
      let connected = false;
      const connecting = app.connect().then(() => (connected = true));
      // Health and metrics answer although Slack does not.
      await until('a failed auth.test', () => logs.some((l) => l.includes('Slack is unreachable; retrying')));
      const health = await fetch(`${base}/healthz`);
      expect(health.status).toBe(503);
      const body = (await health.json()) as { ok: boolean; details: { slack: string; etcd: string } };
      expect(body.ok).toBe(false);
      expect(body.details.etcd).toBe('ok');
      expect(body.details.slack).toMatch(
        new RegExp(`^unreachable since \\d{4}-\\d\\d-\\d\\dT[^ ]+Z: auth\\.test at ${apiUrl.replace(/[./]/g, '\\$&')}: .*ECONNREFUSED`),
      );
      expect((await fetch(`${base}/metrics`)).status).toBe(200);
      const warn = JSON.parse(logs.find((l) => l.includes('Slack is unreachable; retrying'))!) as { level: number; reason: string; retryInMs: number };
      expect(warn.level).toBe(40);
      expect(warn.reason).toContain(`auth.test at ${apiUrl}`);
      // Slack's requests cannot be handled yet: 503 tells Slack to retry.
      const early = await postSlashCommand(`${base}/slack/events`, SECRET, {
        text: 'status early',
        user_id: 'U1',
        channel_id: 'C0OPS',
        response_url: 'http://127.0.0.1:1/',
      });
      expect(early.status).toBe(503);
      expect(connected).toBe(false);

      standIn = await startSlackStandIn({ port: apiPort });
      await connecting;
      expect(app.connected).toBe(true);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      const id = 'after-connect';
      await postSlashCommand(`${base}/slack/events`, SECRET, {
        text: 'status late',
        user_id: 'U1',
        channel_id: 'C0OPS',
        response_url: standIn.responseUrl(id),
      });
      await standIn.waitFor((c) => c.kind === 'response' && c.method === id && c.body.text === 'did status late', 5000);
      expect(dispatcher.callsFor('status early')).toHaveLength(0);
    } finally {
      await app.stop();
      await standIn?.close();
    }
  });

  it('stop() ends the attempts: connect() rejects and nothing stays listening', async () => {
    const app = createSlackApp({
      dispatcher: new FakeDispatcher(),
      log: createLogger({ level: 'silent' }),
      botToken: BOT_TOKEN,
      signingSecret: SECRET,
      apiUrl: `http://127.0.0.1:${await freePort()}/api/`,
      port: 0,
      host: '127.0.0.1',
      metricsRegistry: new Registry(),
      health: async () => ({ ok: true }),
      connectBackoff: { minMs: 60_000, maxMs: 60_000 },
    });
    const { port } = await app.listen();
    const connecting = app.connect();
    await until('/healthz to answer', async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 503);
    await app.stop();
    await expect(connecting).rejects.toThrow(/stopped before it connected/);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });

  it('refuses to build an HTTP receiver without a signing secret, but not a Socket Mode app', () => {
    const base = {
      dispatcher: new FakeDispatcher(),
      log: createLogger({ level: 'silent' }),
      botToken: BOT_TOKEN,
      port: 0,
      metricsRegistry: new Registry(),
      health: async () => ({ ok: true }),
    };
    expect(() => createSlackApp(base)).toThrow(/SLACK_SIGNING_SECRET/);
    expect(() => createSlackApp({ ...base, appToken: 'xapp-1' })).not.toThrow();
  });
});

describe('SlackFeedSink', () => {
  it('posts published events to the feed channel, escaped, one a second, and keeps trying instead of dropping', async () => {
    const standIn = await startSlackStandIn();
    const logs: string[] = [];
    const log = createLogger({ destination: { write: (s: string) => void logs.push(s) } });
    const feed = new SlackFeedSink({
      client: createSlackClient('xoxb-feed', feedClientSettings(standIn.apiUrl), log),
      channel: 'C0FEED',
      log,
      pacing: { minIntervalMs: 300, quietMs: 10, backoff: { minMs: 50, maxMs: 100 } },
    });
    try {
      feed.publish({ kind: 'acl.reload', text: 'rules by <@U123> & co reloaded' });
      await feed.idle();
      const first = standIn.api('chat.postMessage');
      expect(first.map((p) => p.body.channel)).toEqual(['C0FEED']);
      expect(first[0]!.body.text).toBe('[acl.reload] rules by &lt;@U123&gt; &amp; co reloaded');
      expect(first[0]!.body.unfurl_links).toBe('false'); // form-encoded

      // A 429 is the pacer's to wait out (Retry-After), not the client's: one call, one retry.
      standIn.rateLimit('chat.postMessage', 1);
      feed.publish({ kind: 'acl.reload', text: 'after the rate limit' });
      await feed.idle();
      const limited = standIn.api('chat.postMessage').slice(1);
      expect(limited.map((c) => c.body.text)).toEqual(['[acl.reload] after the rate limit', '[acl.reload] after the rate limit']);
      expect(limited[1]!.at - limited[0]!.at).toBeGreaterThanOrEqual(1000 - 20);

      // Refused for a reason that will not pass by itself: logged with its text, retried.
      let refusals = 2;
      standIn.on('chat.postMessage', (c) =>
        refusals-- > 0 ? { status: 200, body: { ok: false, error: 'not_in_channel' } } : { channel: c.body.channel, ts: newTs() },
      );
      feed.publish({ kind: 'drain', text: 'web-1 drained' });
      await feed.idle();
      expect(logs.filter((l) => l.includes('feed message not posted; will retry') && l.includes('web-1 drained'))).toHaveLength(2);
      expect(standIn.api('chat.postMessage').at(-1)!.body.text).toBe('[drain] web-1 drained');
    } finally {
      await feed.stop();
      await standIn.close();
    }
  });
});
