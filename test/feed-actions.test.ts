/**
 * Acting from the feed (real etcd; Slack as signed block_actions / message_action payloads and
 * the Web API stand-in): the buttons under feed lines, a press run through the router as the
 * presser, a presser without the right, a button older than the registry, "Show errors" on a
 * failed apply, the message shortcut, and the line a feed mute leaves when it runs out.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIRM_ACTION } from '../src/adapters/slack/confirm.js';
import { namedServices, STATUS_SHORTCUT } from '../src/adapters/slack/feed-actions.js';
import { FEED_ACTIONS } from '../src/adapters/slack/feed-render.js';
import { FEED_CHANNEL, feedPosts, SIGNING_SECRET, sectionText, startReplica, until, type Replica } from './helpers/feed.js';
import { postAction, postShortcut, startSlackStandIn, type SlackCall, type SlackStandIn } from './helpers/slack.js';
import { makeWorkspace, ONCALL, OPS_CHANNEL, VISITOR, type Workspace } from './helpers/workspace.js';

const ACL = `groups:
  oncall: [${ONCALL}]
rules:
  - allow: [status, help]
    users: ["*"]
  - name: secrets stay secret
    deny: [status]
    services: ["secret-*"]
    users: ["*"]
  - name: oncall changes
    allow: ["*"]
    groups: [oncall]
    channels: [${FEED_CHANNEL}, ${OPS_CHANNEL}, dm]
`;

interface Blk {
  type: string;
  text?: { text: string };
  elements?: { action_id: string; value: string; text: { text: string }; style?: string }[];
}

describe('actions on feed messages (real etcd, signed Slack requests)', () => {
  let ws: Workspace;
  let standIn: SlackStandIn;
  let replica: Replica;
  const records: Record<string, unknown>[] = [];

  beforeAll(async () => {
    ws = await makeWorkspace({ acl: ACL });
    standIn = await startSlackStandIn();
    // The audit trail ignores the level: its records arrive here to be asserted on.
    const log = pino({ level: 'error' }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
    replica = await startReplica({ configPath: ws.configPath, standIn, slack: true, log });
    await until('the feed poster to watch', () => replica.poster!.watching);
  });

  afterAll(async () => {
    await replica?.stop();
    await standIn?.close();
    await ws?.dispose();
  });

  const ok = async (text: string) => {
    const r = await replica.runtime.router.dispatch({ text, caller: { userId: ONCALL, channel: 'dm', source: 'slack' } });
    expect(r.ok, `${text}: ${r.summary}`).toBe(true);
    return r;
  };
  /** The feed post holding a line that contains `needle`, once posted. */
  const feedPost = async (needle: string): Promise<SlackCall> => {
    await until(`a feed line with ${needle}`, () => feedPosts(standIn).some((p) => sectionText(p).includes(needle)), 15_000);
    return feedPosts(standIn).find((p) => sectionText(p).includes(needle))!;
  };
  /** The buttons right under the section whose text contains `needle`. */
  const buttonsUnder = (post: SlackCall, needle: string) => {
    const blocks = post.body.blocks as Blk[];
    const i = blocks.findIndex((b) => b.type === 'section' && b.text!.text.includes(needle));
    expect(i, `a section with ${needle}`).toBeGreaterThanOrEqual(0);
    const next = blocks[i + 1];
    return next?.type === 'actions' ? next.elements! : [];
  };
  let n = 0;
  /** Press a button in the feed channel; resolves with the first answer on its response_url. */
  const press = async (user: string, actionId: string, value: string, predicate: (c: SlackCall) => boolean = () => true) => {
    const id = `press-${++n}`;
    const res = await postAction(replica.events, SIGNING_SECRET, {
      userId: user,
      actionId,
      value,
      responseUrl: standIn.responseUrl(id),
      channelId: FEED_CHANNEL,
    });
    expect(res.status).toBe(200);
    return standIn.waitFor((c) => c.kind === 'response' && c.method === id && predicate(c), 15_000);
  };
  const audits = (command: string) => records.filter((r) => r.audit === true && r.command === command);
  const stateOf = async (service: string, instance: string) => {
    const raw = await ws.etcd.get(`${ws.prefixes.switchyard}/state/${service}/${instance}`).string();
    return raw === null ? null : (JSON.parse(raw) as { state: string; by: string });
  };

  it('puts Drain / Deregister under an instance line, and Show errors under a failed apply, which shows its errors', async () => {
    await ok('register web web-1 10.0.0.1:80');
    const post = await feedPost('*web/web-1* registered');
    const buttons = buttonsUnder(post, '*web/web-1* registered');
    expect(buttons.map((b) => [b.action_id, b.text.text])).toEqual([
      [FEED_ACTIONS.drain, 'Drain'],
      [FEED_ACTIONS.deregister, 'Deregister'],
    ]);
    expect(JSON.parse(buttons[0]!.value)).toEqual({ service: 'web', instance: 'web-1' });

    // An agent's failed reload, then its next (good) apply: the button shows the failed one.
    const agentKey = `${ws.prefixes.switchyard}/agents/lb-1`;
    const report = (ok: boolean, error?: string[]) =>
      JSON.stringify({
        agentId: 'lb-1',
        method: 'reload',
        ok,
        durationMs: 12,
        changes: ['+backend api'],
        ...(error ? { error, failure: 'check' } : {}),
        at: new Date().toISOString(),
      });
    await ws.etcd.put(agentKey).value(report(false, ['[ALERT] parsing [haproxy.cfg:12] : unknown keyword "bogus"', '[ALERT] fatal errors found']));
    const failed = await feedPost('*haproxy lb-1* check failed');
    const [errors, ...more] = buttonsUnder(failed, '*haproxy lb-1* check failed');
    expect(more).toEqual([]);
    expect(errors).toMatchObject({ action_id: FEED_ACTIONS.errors, text: { text: 'Show errors' } });
    await ws.etcd.put(agentKey).value(report(true));
    const good = await feedPost('*haproxy lb-1* reload apply');
    expect(buttonsUnder(good, '*haproxy lb-1* reload apply')).toEqual([]);

    const shown = await press(VISITOR, FEED_ACTIONS.errors, errors!.value);
    expect(shown.body).toMatchObject({ response_type: 'ephemeral', replace_original: false });
    const text = JSON.stringify(shown.body.blocks);
    expect(text).toContain('haproxy lb-1, reload apply at');
    expect(text).toContain('failed (check)');
    expect(text).toContain('unknown keyword \\"bogus\\"');
    expect(text).toContain('[ALERT] fatal errors found');
    // No agent left to wait for when the next tests drain.
    await ws.etcd.delete().key(agentKey);
    await feedPost('*haproxy lb-1* agent is gone');
  });

  it('a press by a user with the right runs the command as the presser: written, audited, in the feed by the presser', async () => {
    await ok('register web web-2 10.0.0.2:80');
    const value = JSON.stringify({ service: 'web', instance: 'web-1' });
    const answer = await press(ONCALL, FEED_ACTIONS.drain, value, (c) => String(c.body.text).includes('set to drain'));
    expect(answer.body).toMatchObject({ response_type: 'ephemeral', replace_original: false });
    expect(await stateOf('web', 'web-1')).toMatchObject({ state: 'drain', by: ONCALL });
    await until('the audit record', () => audits('drain').some((a) => a.result === 'ok'));
    expect(audits('drain').find((a) => a.result === 'ok')).toMatchObject({
      user: ONCALL,
      channel: FEED_CHANNEL,
      source: 'slack',
      args: { service: 'web', instance: 'web-1' },
    });

    const line = '*web/web-1* draining (was ready) — by <@U0ONCALL> via `drain`';
    const post = await feedPost(line);
    // Drained now: the line offers what makes sense for that state.
    expect(buttonsUnder(post, line).map((b) => b.text.text)).toEqual(['Undrain', 'Deregister']);
  });

  it('a presser without the right is refused with the ACL’s reason, exactly as if typed, and nothing is written', async () => {
    const before = await ws.etcd.get(`${ws.prefixes.services}/web/web-2`).exec();
    const typed = await replica.runtime.router.dispatch({ text: 'deregister web web-2', caller: { userId: VISITOR, channel: FEED_CHANNEL, source: 'slack' } });
    expect(typed.code).toBe('E_DENIED');
    const denials = audits('deregister').filter((a) => a.result === 'denied').length;

    const answer = await press(VISITOR, FEED_ACTIONS.deregister, JSON.stringify({ service: 'web', instance: 'web-2' }));
    expect(answer.body).toMatchObject({ response_type: 'ephemeral', replace_original: false });
    expect(answer.body.text).toContain(typed.summary);
    expect(typed.summary).toMatch(/^you may not run deregister/);
    await until('the refusal’s audit record', () => audits('deregister').filter((a) => a.result === 'denied').length === denials + 1);
    expect(audits('deregister').at(-1)).toMatchObject({ user: VISITOR, channel: FEED_CHANNEL, result: 'denied' });
    const after = await ws.etcd.get(`${ws.prefixes.services}/web/web-2`).exec();
    expect(after.kvs[0]?.mod_revision).toBe(before.kvs[0]?.mod_revision);
    expect(await ws.instanceValue('web', 'web-2')).toBe('10.0.0.2:80');
  });

  it('draining the last ready instance from a button asks for confirmation, as typed, and changes nothing yet', async () => {
    // web-1 is draining (above): web-2 is the last one in rotation.
    const answer = await press(ONCALL, FEED_ACTIONS.drain, JSON.stringify({ service: 'web', instance: 'web-2' }));
    expect(answer.body).toMatchObject({ response_type: 'ephemeral', replace_original: false });
    expect(answer.body.text).toMatch(/^Confirmation needed: web\/web-2 is the last ready instance of web/);
    expect(JSON.stringify(answer.body.blocks)).toContain(CONFIRM_ACTION);
    expect((await stateOf('web', 'web-2'))?.state ?? 'ready').toBe('ready');
  });

  it('a button older than the registry (instance gone) gets a clear reply and writes nothing', async () => {
    await ok('register web web-3 10.0.0.3:80');
    const post = await feedPost('*web/web-3* registered');
    const drain = buttonsUnder(post, '*web/web-3* registered').find((b) => b.action_id === FEED_ACTIONS.drain)!;
    await ok('deregister web web-3');

    const answer = await press(ONCALL, FEED_ACTIONS.drain, drain.value);
    expect(answer.body.text).toContain('web/web-3 is not registered any more');
    expect(answer.body.text).toContain('nothing was changed');
    expect(await ws.instanceValue('web', 'web-3')).toBeNull();
    expect(await stateOf('web', 'web-3')).toBeNull();
    await until('the audit record', () => audits('drain').some((a) => a.code === 'E_NOT_FOUND'));

    const forged = await press(ONCALL, FEED_ACTIONS.deregister, JSON.stringify({ service: 'web', instance: 'Web 2; rm' }));
    expect(forged.body.text).toBe('This button is not one switchyard can read; nothing was changed.');
    expect(await ws.instanceValue('web', 'web-2')).toBe('10.0.0.2:80');
  });

  it('the message shortcut shows `status` of the registered services a message names, as the presser (ACL’d)', async () => {
    await ok('register secret-db db-1 10.0.9.1:5432');
    const shortcut = async (user: string, text: string) => {
      const id = `shortcut-${++n}`;
      const res = await postShortcut(replica.events, SIGNING_SECRET, {
        userId: user,
        callbackId: STATUS_SHORTCUT,
        responseUrl: standIn.responseUrl(id),
        message: { text, user: 'U0SOMEONE' },
      });
      expect(res.status).toBe(200);
      return standIn.waitFor((c) => c.kind === 'response' && c.method === id, 15_000);
    };

    const web = await shortcut(VISITOR, 'Is Web slow again? Nothing about nosuchservice.');
    expect(web.body).toMatchObject({ response_type: 'ephemeral', replace_original: false });
    const typed = await replica.runtime.router.dispatch({ text: 'status web', caller: { userId: VISITOR, channel: OPS_CHANNEL, source: 'slack' } });
    expect(typed.ok).toBe(true);
    expect(web.body.text).toContain(typed.summary);
    expect(JSON.stringify(web.body.blocks)).toContain('web-2');

    const none = await shortcut(VISITOR, 'lunch, anyone?');
    expect(none.body.text).toBe('This message names no registered service, so there is no status to show.');

    const secret = await shortcut(VISITOR, 'secret-db is slow');
    expect(secret.body.text).toContain('you may not run status on secret-db here: denied by');
  });

  it('a feed mute that runs out by itself says so in the feed; an unmute by command is told once, as itself', async () => {
    await ok('feed mute api 2s');
    const line = await feedPost('*api* feed mute ran out (set by U0ONCALL until ');
    expect(sectionText(line)).toMatch(/\*api\* feed mute ran out \(set by U0ONCALL until [^)]+\): its changes show in every feed again — \(lease expired\)/);

    await ok('feed mute api 10m');
    await ok('feed unmute api');
    await feedPost('feed: api unmuted by U0ONCALL');
    // Everything before this registration has been through the feed once it is posted.
    await ok('register api api-1 10.0.1.1:80');
    await feedPost('*api/api-1* registered');
    const all = feedPosts(standIn).map(sectionText).join('\n');
    expect(all.match(/\*api\* feed mute ran out/g)).toHaveLength(1);
    expect(all).not.toContain('feed mute removed');
  });
});

describe('namedServices', () => {
  it('finds registered names as whole words, case-insensitively, in order of first mention', () => {
    const registered = ['web', 'api', 'web-canary', 'db.v2'];
    expect(namedServices('Web is down; api too. See *web-canary/c-1* and db.v2.', registered)).toEqual(['web', 'api', 'web-canary', 'db.v2']);
    expect(namedServices('webhooks and apis', registered)).toEqual([]);
    expect(namedServices('<https://web.example.com|web.example.com> web', registered)).toEqual(['web']);
  });
});
