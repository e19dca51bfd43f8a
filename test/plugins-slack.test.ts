/**
 * External plugins through the signed Slack path (real etcd, Bolt HTTP receiver, Web API
 * stand-in, the #ops feed poster): ACL refusal and help, the confirmation buttons, the audit
 * record, the feed line attributed to the caller, and a throwing or hanging plugin.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIRM_ACTION } from '../src/adapters/slack/confirm.js';
import { feedPosts, SIGNING_SECRET, startReplica, until, type Replica } from './helpers/feed.js';
import { FAULTY_PLUGIN, pluginWorkspace } from './helpers/plugins.js';
import { postAction, postSlashCommand, startSlackStandIn, type SlackCall, type SlackStandIn } from './helpers/slack.js';
import { ONCALL, OPS_CHANNEL, VISITOR, type Workspace } from './helpers/workspace.js';

describe('external plugins through Slack (real etcd, signed requests, feed)', () => {
  let ws: Workspace;
  let standIn: SlackStandIn;
  let replica: Replica;
  const records: Record<string, unknown>[] = [];

  beforeAll(async () => {
    ws = await pluginWorkspace({
      plugins: 'plugins:\n  - module: ./plugins/maintenance/index.js\n    options: { reason: kernel patch }\n  - ./plugins/http-check\n  - ./faulty.mjs\n',
      files: { 'faulty.mjs': FAULTY_PLUGIN },
    });
    standIn = await startSlackStandIn();
    // Audit records and errors, kept to assert on (the audit trail ignores the level).
    const log = pino({ level: 'error' }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
    replica = await startReplica({ configPath: ws.configPath, standIn, slack: true, log });
  });

  afterAll(async () => {
    await replica?.stop();
    await standIn?.close();
    await ws?.dispose();
  });

  let n = 0;
  /** A slash command; resolves with the first response matching `predicate`. */
  const slash = async (user: string, text: string, predicate: (c: SlackCall) => boolean = () => true) => {
    const id = `r${++n}`;
    const res = await postSlashCommand(replica.events, SIGNING_SECRET, { text, user_id: user, channel_id: OPS_CHANNEL, response_url: standIn.responseUrl(id) });
    expect(res.status).toBe(200);
    return standIn.waitFor((c) => c.kind === 'response' && c.method === id && predicate(c), 10_000);
  };
  const audits = (command: string) => records.filter((r) => r.audit === true && r.command === command);

  it('asks with buttons, runs on confirm, reports it in #ops as the caller’s, and audits both steps', async () => {
    for (const i of [1, 2]) {
      const r = await replica.runtime.router.dispatch({
        text: `register web web-${i} 10.0.0.${i}:80`,
        caller: { userId: ONCALL, channel: OPS_CHANNEL, source: 'slack' },
      });
      expect(r.ok).toBe(true);
    }
    const ask = await slash(ONCALL, 'maintenance web on', (c) => JSON.stringify(c.body.blocks ?? []).includes(CONFIRM_ACTION));
    expect(ask.body.text).toMatch(/^Confirmation needed: this takes all 2 instance\(s\) of web out of rotation \(kernel patch\)/);
    // Nothing changed while the question is open.
    expect(JSON.parse((await ws.etcd.get(`${ws.prefixes.switchyard}/state/web/web-1`).string())!)).toMatchObject({ state: 'ready' });

    const actions = (ask.body.blocks as { type: string; elements?: { action_id: string; value: string }[] }[]).find((b) => b.type === 'actions')!;
    const value = actions.elements!.find((e) => e.action_id === CONFIRM_ACTION)!.value;
    await postAction(replica.events, SIGNING_SECRET, { userId: ONCALL, actionId: CONFIRM_ACTION, value, responseUrl: standIn.responseUrl('press') });
    const done = await standIn.waitFor((c) => c.kind === 'response' && c.method === 'press' && String(c.body.text).includes('in maintenance'), 10_000);
    expect(done.body.text).toContain('web: web-1, web-2 in maintenance (kernel patch)');

    // The feed line: the registry change made by the plugin, attributed to whoever confirmed it.
    const post = await standIn.waitFor(
      (c) => c.method === 'chat.postMessage' && JSON.stringify(c.body).includes('web-1') && JSON.stringify(c.body).includes('maint'),
      20_000,
    );
    expect(feedPosts(standIn)).toContain(post);
    expect(JSON.stringify(post.body)).toContain(ONCALL);
    expect(JSON.stringify(post.body)).toContain('maintenance');

    await until('both audit records', () => audits('maintenance').length >= 2);
    expect(audits('maintenance').map((a) => [a.result, a.user, a.source])).toEqual([
      ['confirmation_needed', ONCALL, 'slack'],
      ['ok', ONCALL, 'slack'],
    ]);
    expect(audits('maintenance')[1]!.args).toEqual({ service: 'web', mode: 'on' });
  });

  it('refuses a plugin command by acl.yaml and lists it in help only for those allowed', async () => {
    const denied = await slash(VISITOR, 'maintenance web off --yes');
    expect(denied.body.text).toContain('you may not run maintenance on web');
    expect(JSON.parse((await ws.etcd.get(`${ws.prefixes.switchyard}/state/web/web-1`).string())!)).toMatchObject({ state: 'maint' });
    expect(audits('maintenance').at(-1)).toMatchObject({ result: 'denied', user: VISITOR });

    const nobodyHelp = JSON.stringify((await slash('U0NOBODY', 'help')).body);
    expect(nobodyHelp).toContain('probe');
    expect(nobodyHelp).not.toContain('maintenance');
    const oncallHelp = JSON.stringify((await slash(ONCALL, 'help')).body);
    expect(oncallHelp).toContain('maintenance');
  });

  it('answers a throwing plugin and a hanging one with coded replies and keeps serving', async () => {
    const boom = await slash(ONCALL, 'explode');
    expect(boom.body.text).toMatch(/plugin faulty failed running explode \(request [\w.-]+\); details are in the bot's log/);
    expect(JSON.stringify(boom.body)).not.toContain('kaboom');
    const hang = await slash(ONCALL, 'hang');
    expect(hang.body.text).toContain('hang did not finish within 300ms; it may still complete');
    const hello = await slash(ONCALL, 'hello');
    expect(hello.body.text).toContain(`hello ${ONCALL}`);
    expect(audits('explode').map((a) => a.code)).toEqual(['E_PLUGIN']);
    expect(audits('hang').map((a) => [a.result, a.code])).toEqual([['error', 'E_TIMEOUT']]);
    expect(records.some((r) => r.plugin === 'faulty' && JSON.stringify(r).includes('kaboom'))).toBe(true);
  });
});
