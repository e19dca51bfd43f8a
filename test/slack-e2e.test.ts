import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSlackApp, type SlackApp } from '../src/adapters/slack/app.js';
import { loadConfig } from '../src/config/load.js';
import { buildRuntime, type Runtime } from '../src/app/runtime.js';
import { newTs, postEvent, postSlashCommand, startSlackStandIn, type SlackStandIn } from './helpers/slack.js';
import { makeWorkspace, ONCALL, OPS_CHANNEL, VISITOR, type Workspace } from './helpers/workspace.js';

const SECRET = 'e2e-signing-secret';

/** The real bot (router, ACL, etcd) behind the real Bolt HTTP receiver. */
describe('Slack end to end (real etcd, signed requests, Web API stand-in)', () => {
  let ws: Workspace;
  let standIn: SlackStandIn;
  let runtime: Runtime;
  let slack: SlackApp;
  let events: string;

  beforeAll(async () => {
    ws = await makeWorkspace();
    standIn = await startSlackStandIn();
    // The audit trail ignores the level by design; send everything nowhere in this test.
    const log = pino({ level: 'silent' }, { write: () => {} });
    runtime = await buildRuntime({ config: await loadConfig(ws.configPath, {}), secrets: {}, log, feed: { publish: () => {} } });
    slack = createSlackApp({
      dispatcher: runtime.router,
      log,
      botToken: 'xoxb-e2e',
      signingSecret: SECRET,
      apiUrl: standIn.apiUrl,
      port: 0,
      host: '127.0.0.1',
      metricsRegistry: runtime.metrics.registry,
      health: async () => ({ ok: (await runtime.registry.health()).ok }),
    });
    const { port } = await slack.start();
    events = `http://127.0.0.1:${port}/slack/events`;
  });

  afterAll(async () => {
    await slack?.stop();
    await runtime?.close();
    await standIn?.close();
    await ws?.dispose();
  });

  it('a slash command registers an instance and the reply reaches response_url', async () => {
    const res = await postSlashCommand(events, SECRET, {
      text: 'register web web-1 10.1.0.1:80',
      user_id: ONCALL,
      channel_id: OPS_CHANNEL,
      response_url: standIn.responseUrl('slash-1'),
    });
    expect(res.status).toBe(200);
    const reply = await standIn.waitFor((c) => c.kind === 'response' && c.method === 'slash-1' && String(c.body.text).includes('registered'), 5000);
    expect(String(reply.body.text)).toContain('registered web/web-1 at 10.1.0.1:80');
    expect(await ws.instanceValue('web', 'web-1')).toBe('10.1.0.1:80');
  });

  it('a retried event with the same event_id registers once', async () => {
    const event = { type: 'message', channel_type: 'im', channel: 'D0ONCALL', user: ONCALL, text: 'register web web-2 10.1.0.2:80', ts: newTs() };
    const first = await postEvent(events, SECRET, event);
    await postEvent(events, SECRET, event, { eventId: first.eventId, retryNum: 1 });
    await postEvent(events, SECRET, event, { eventId: first.eventId, retryNum: 2 });
    await standIn.waitFor((c) => c.method === 'chat.postMessage' && String(c.body.text).includes('web/web-2'), 5000);
    // A further, distinct event proves the retries had their chance to run before we count.
    const later = { ...event, text: 'status web', ts: newTs() };
    await postEvent(events, SECRET, later);
    await standIn.waitFor((c) => c.method === 'chat.postMessage' && String(c.body.text).includes('web: 2 instance'), 5000);

    const kv = await ws.etcd.get(`${ws.prefixes.services}/web/web-2`).exec();
    expect(kv.kvs).toHaveLength(1);
    expect(kv.kvs[0]!.version).toBe('1'); // written exactly once
    const replies = standIn.api('chat.postMessage').filter((c) => String(c.body.text).includes('web/web-2'));
    expect(replies).toHaveLength(1);
  });

  it('a denied user changes nothing in etcd and is told which rule refused', async () => {
    await postSlashCommand(events, SECRET, {
      text: 'deregister web web-1 --yes',
      user_id: VISITOR,
      channel_id: OPS_CHANNEL,
      response_url: standIn.responseUrl('denied'),
    });
    const reply = await standIn.waitFor((c) => c.kind === 'response' && c.method === 'denied' && String(c.body.text).includes('may not'), 5000);
    expect(String(reply.body.text)).toContain('you may not run deregister');
    expect(await ws.instanceValue('web', 'web-1')).toBe('10.1.0.1:80');
  });

  it('on-call in a channel outside the rule is refused too (IDs, not names)', async () => {
    await postSlashCommand(events, SECRET, {
      text: 'register web web-9 10.1.0.9:80',
      user_id: ONCALL,
      channel_id: 'C0RANDOM',
      response_url: standIn.responseUrl('other-channel'),
      user_name: 'oncall',
    } as Parameters<typeof postSlashCommand>[2]);
    await standIn.waitFor((c) => c.kind === 'response' && c.method === 'other-channel' && String(c.body.text).includes('may not'), 5000);
    expect(await ws.instanceValue('web', 'web-9')).toBeNull();
  });

  it('an unsigned request is refused with 401 and runs nothing', async () => {
    const res = await postSlashCommand(
      events,
      SECRET,
      { text: 'register web web-x 10.1.0.3:80', user_id: ONCALL, channel_id: OPS_CHANNEL, response_url: standIn.responseUrl('forged') },
      { secret: 'not-the-secret' },
    );
    expect(res.status).toBe(401);
    expect(await ws.instanceValue('web', 'web-x')).toBeNull();
  });
});
