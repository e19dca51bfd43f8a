/**
 * Socket Mode end to end: the real bot (router, ACL, etcd, etcd seen-set) connected to a
 * local Socket Mode stand-in — no signing secret, no HTTP endpoint for Slack. Every
 * envelope is acknowledged by its envelope_id, replies go to response_url or
 * chat.postMessage, a Confirm press runs once, and commands survive a dropped socket and a
 * `disconnect` (refresh_requested) without being lost or run twice.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIRM_ACTION } from '../src/adapters/slack/confirm.js';
import { startReplica, until, type Replica } from './helpers/feed.js';
import { actionPayload, eventPayload, newTs, slashCommandPayload, startSlackStandIn, type SlackCall, type SlackStandIn } from './helpers/slack.js';
import { startSocketModeStandIn, type SocketModeStandIn } from './helpers/socket-mode.js';
import { makeWorkspace, ONCALL, OPS_CHANNEL, type Workspace } from './helpers/workspace.js';

interface LogLine {
  msg: string;
  audit?: boolean;
  requestId?: string;
  command?: string;
  result?: string;
}

describe('Socket Mode end to end (real etcd, local Socket Mode stand-in)', () => {
  let ws: Workspace;
  let web: SlackStandIn;
  let sm: SocketModeStandIn;
  let bot: Replica;
  const lines: LogLine[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });

  beforeAll(async () => {
    ws = await makeWorkspace();
    web = await startSlackStandIn();
    sm = await startSocketModeStandIn(web);
    // 2 s pings: a reconnect follows a lost socket after 2 s instead of the default 5 s.
    bot = await startReplica({ configPath: ws.configPath, standIn: web, feed: false, slack: true, appToken: sm.appToken, socketPingTimeoutMs: 2000, log });
  });

  afterAll(async () => {
    await bot?.stop();
    await sm?.close();
    await web?.close();
    await ws?.dispose();
  });

  const audits = (requestId: string) => lines.filter((l) => l.audit === true && l.requestId === requestId);
  const waitResponse = (id: string, predicate: (c: SlackCall) => boolean = () => true) =>
    web.waitFor((c) => c.kind === 'response' && c.method === id && predicate(c), 10_000);
  const slash = (text: string, id: string) =>
    sm.send(
      'slash_commands',
      slashCommandPayload({ text, user_id: ONCALL, channel_id: OPS_CHANNEL, response_url: web.responseUrl(id), trigger_id: `${id}.trigger` }),
    );
  const version = async (service: string, instance: string) => (await ws.etcd.get(`${ws.prefixes.services}/${service}/${instance}`).exec()).kvs[0]?.version;

  it('connects with the app-level token, without a signing secret, and reports healthy', async () => {
    expect(sm.connections).toBe(1);
    expect(web.api('auth.test')[0]!.token).toBe('xoxb-bot');
    expect(web.api('apps.connections.open').map((c) => c.token)).toEqual([sm.appToken]);
    const health = await fetch(`${bot.base}/healthz`);
    expect(health.status).toBe(200);
    expect(((await health.json()) as { details: { slack: string } }).details.slack).toBe('ok');
    // No HTTP receiver: nothing unsigned can be posted to it.
    expect((await fetch(`${bot.base}/slack/events`, { method: 'POST', body: '{}' })).status).toBe(404);
  });

  it('acks a slash command with its envelope_id within 3 s, replies at response_url, runs it once', async () => {
    const env = slash('register web web-1 10.0.0.1:80', 'sm-slash');
    const ack = await env.acked;
    expect(ack.envelopeId).toBe(env.id);
    expect(ack.ms).toBeLessThan(3000);
    expect(ack.payload).toMatchObject({ response_type: 'ephemeral', text: 'running `register web web-1 10.0.0.1:80`…' });
    await waitResponse('sm-slash', (c) => String(c.body.text).includes('registered web/web-1 at 10.0.0.1:80'));
    expect(await version('web', 'web-1')).toBe('1');
    expect(audits('sm-slash.trigger')).toHaveLength(1);
  });

  it('acks an events_api DM and answers with chat.postMessage in the DM', async () => {
    const payload = eventPayload({ type: 'message', channel_type: 'im', channel: 'D0ONCALL', user: ONCALL, text: 'status web', ts: newTs() });
    const env = sm.send('events_api', payload);
    expect((await env.acked).envelopeId).toBe(env.id);
    const post = await web.waitFor(
      (c) => c.method === 'chat.postMessage' && c.body.channel === 'D0ONCALL' && String(c.body.text).includes('web: 1 instance'),
      10_000,
    );
    expect(post.token).toBe('xoxb-bot');
    expect(audits(payload.event_id as string)).toHaveLength(1);
  });

  it('runs a Confirm press once, also when the same press arrives again in a new envelope', async () => {
    const reg = await bot.runtime.router.dispatch({
      text: 'register db db-1 10.0.0.3:5432',
      caller: { userId: ONCALL, channel: OPS_CHANNEL, source: 'slack' },
    });
    expect(reg.ok).toBe(true);
    await slash('deregister db db-1', 'sm-ask').acked;
    const ask = await waitResponse('sm-ask', (c) => JSON.stringify(c.body.blocks ?? []).includes(CONFIRM_ACTION));
    const actions = (ask.body.blocks as { type: string; elements?: { action_id: string; value: string }[] }[]).find((blk) => blk.type === 'actions')!;
    const value = actions.elements!.find((e) => e.action_id === CONFIRM_ACTION)!.value;

    const press = actionPayload({ userId: ONCALL, actionId: CONFIRM_ACTION, value, responseUrl: web.responseUrl('sm-press') });
    const first = sm.send('interactive', press);
    expect((await first.acked).envelopeId).toBe(first.id);
    await waitResponse('sm-press', (c) => String(c.body.text).includes('deregistered db/db-1'));
    const again = sm.send('interactive', press);
    expect((await again.acked).envelopeId).toBe(again.id);
    await until('the repeated press to be logged as a duplicate', () =>
      lines.some((l) => l.msg === 'duplicate Slack request acknowledged, not executed' && l.requestId === press.trigger_id),
    );
    expect(lines.filter((l) => l.audit === true && l.command === 'deregister' && l.result === 'ok')).toHaveLength(1);
    expect(await ws.instanceValue('db', 'db-1')).toBeNull();
    // Progress, then the result — and nothing for the repeat (not even "already confirmed").
    expect(web.responses('sm-press')).toHaveLength(2);
  });

  it('reconnects after the socket is dropped; the command in flight, one sent meanwhile and one after all run once', async () => {
    const before = sm.connections;
    const inFlight = slash('register web web-2 10.0.0.2:80', 'sm-inflight');
    sm.drop();
    const meanwhile = sm.send(
      'events_api',
      eventPayload({ type: 'message', channel_type: 'im', channel: 'D0ONCALL', user: ONCALL, text: 'register web web-3 10.0.0.3:80', ts: newTs() }),
    );
    await sm.waitForConnection(before + 1);
    const after = slash('register web web-4 10.0.0.4:80', 'sm-after');
    const acks = await Promise.all([inFlight.acked, meanwhile.acked, after.acked]);
    expect(acks.every((a) => a.connection === before + 1 || a.connection === before)).toBe(true);
    await until('all three registered', async () =>
      (await Promise.all(['web-2', 'web-3', 'web-4'].map((i) => ws.instanceValue('web', i)))).every((v) => v !== null),
    );
    expect(await Promise.all(['web-2', 'web-3', 'web-4'].map((i) => version('web', i)))).toEqual(['1', '1', '1']);
    expect(audits('sm-inflight.trigger')).toHaveLength(1);
    expect(audits(meanwhile.payload.event_id as string)).toHaveLength(1);
    expect(audits('sm-after.trigger')).toHaveLength(1);
    // A new ticket for the new connection, asked for with the app-level token.
    expect(web.api('apps.connections.open').length).toBeGreaterThanOrEqual(before + 1);
    expect((await fetch(`${bot.base}/healthz`)).status).toBe(200);
  });

  it('runs a command once when its ack is lost and Slack delivers it again on the next connection', async () => {
    const before = sm.connections;
    const env = sm.send(
      'slash_commands',
      slashCommandPayload({
        text: 'register web web-6 10.0.0.6:80',
        user_id: ONCALL,
        channel_id: OPS_CHANNEL,
        response_url: web.responseUrl('sm-lost'),
        trigger_id: 'sm-lost.trigger',
      }),
      { loseAck: true },
    );
    const ack = await env.acked;
    // Acknowledged on the new connection — as the duplicate it now is.
    expect(ack.connection).toBe(before + 1);
    expect(sm.redelivered).toContain(env.id);
    expect(ack.payload).toEqual({});
    await waitResponse('sm-lost', (c) => String(c.body.text).includes('registered web/web-6'));
    expect(lines.some((l) => l.msg === 'duplicate Slack request acknowledged, not executed' && l.requestId === 'sm-lost.trigger')).toBe(true);
    expect(audits('sm-lost.trigger')).toHaveLength(1);
    expect(await version('web', 'web-6')).toBe('1');
  });

  it('reconnects when Slack sends disconnect (refresh_requested), and keeps running each command once', async () => {
    const before = sm.connections;
    sm.requestRefresh();
    await sm.waitForConnection(before + 1);
    const env = slash('register web web-5 10.0.0.5:80', 'sm-refresh');
    const ack = await env.acked;
    expect(ack.connection).toBe(before + 1);
    await waitResponse('sm-refresh', (c) => String(c.body.text).includes('registered web/web-5'));
    expect(await version('web', 'web-5')).toBe('1');
    expect(audits('sm-refresh.trigger')).toHaveLength(1);
    await until('healthy again', async () => (await fetch(`${bot.base}/healthz`)).status === 200);
  });
});
