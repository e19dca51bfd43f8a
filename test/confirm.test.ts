import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CANCEL_ACTION, CONFIRM_ACTION } from '../src/adapters/slack/confirm.js';
import { startReplica, SIGNING_SECRET, until, type Replica } from './helpers/feed.js';
import { postAction, postSlashCommand, type SlackCall, type SlackStandIn, startSlackStandIn } from './helpers/slack.js';
import { makeWorkspace, ONCALL, OPS_CHANNEL, VISITOR, type Workspace } from './helpers/workspace.js';

/** Two `serve` replicas (presses may reach either) and one with 1 s confirmations. */
describe('confirmation buttons for destructive commands (real etcd, signed requests)', () => {
  let ws: Workspace;
  let standIn: SlackStandIn;
  let a: Replica;
  let b: Replica;
  let quick: Replica;

  beforeAll(async () => {
    ws = await makeWorkspace();
    standIn = await startSlackStandIn();
    [a, b, quick] = await Promise.all([
      startReplica({ configPath: ws.configPath, standIn, feed: false, slack: true }),
      startReplica({ configPath: ws.configPath, standIn, feed: false, slack: true }),
      startReplica({ configPath: ws.configPath, standIn, feed: false, slack: true, confirmTtlMs: 1000 }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([a, b, quick].map((r) => r?.stop()));
    await standIn?.close();
    await ws?.dispose();
  });

  /** Each test has a service of its own, with one instance: the last ready one. */
  const register = async (service: string, instance: string) => {
    const reply = await a.runtime.router.dispatch({
      text: `register ${service} ${instance} 10.0.0.1:80`,
      caller: { userId: ONCALL, channel: OPS_CHANNEL, source: 'slack' },
    });
    expect(reply.ok).toBe(true);
  };
  const waitResponse = (id: string, predicate: (c: SlackCall) => boolean = () => true) =>
    standIn.waitFor((c) => c.kind === 'response' && c.method === id && predicate(c), 5000);
  /** Ask for a destructive command by slash command; resolves with the buttons' value. */
  const ask = async (replica: Replica, text: string, id: string) => {
    await postSlashCommand(replica.events, SIGNING_SECRET, { text, user_id: ONCALL, channel_id: OPS_CHANNEL, response_url: standIn.responseUrl(id) });
    const msg = await waitResponse(id, (c) => JSON.stringify(c.body.blocks ?? []).includes(CONFIRM_ACTION));
    const actions = (msg.body.blocks as { type: string; elements?: { action_id: string; value: string }[] }[]).find((blk) => blk.type === 'actions')!;
    return { msg, value: actions.elements!.find((e) => e.action_id === CONFIRM_ACTION)!.value };
  };
  /** Every key of one service (address and state), with the revision that last wrote it. */
  const keysOf = async (service: string) => {
    const kvs = await Promise.all(
      [`${ws.prefixes.services}/${service}/`, `${ws.prefixes.switchyard}/state/${service}/`].map(async (p) => (await ws.etcd.getAll().prefix(p).exec()).kvs),
    );
    return kvs.flat().map((kv) => `${kv.key.toString()} @${kv.mod_revision}`);
  };
  const press = (replica: Replica, user: string, actionId: string, value: string, id: string) =>
    postAction(replica.events, SIGNING_SECRET, { userId: user, actionId, value, responseUrl: standIn.responseUrl(id) });

  it('asks instead of deregistering the last ready instance, and changes nothing until confirmed', async () => {
    await register('web', 'web-1');
    const keys = await keysOf('web');
    expect(keys).toHaveLength(2);
    const { msg } = await ask(a, 'deregister web web-1', 'ask-1');
    expect(msg.body.replace_original).toBe(true);
    expect(msg.body.text).toMatch(/^Confirmation needed: web\/web-1 is the last ready instance of web/);
    expect(JSON.stringify(msg.body.blocks)).toContain('Only <@U0ONCALL> can answer; this expires in 2 min');
    // The pending confirmation is stored (the command was processed this far)…
    const pending = await ws.etcd.getAll().prefix(`${ws.prefixes.switchyard}/confirm/`).strings();
    expect(
      Object.values(pending)
        .map((v) => JSON.parse(v) as { text: string; user: string })
        .filter((p) => p.text === 'deregister web web-1'),
    ).toEqual([expect.objectContaining({ text: 'deregister web web-1', user: ONCALL })]);
    // …and neither key of the instance was written since it was registered.
    expect(await keysOf('web')).toEqual(keys);
  });

  it('refuses another user’s press with an ephemeral answer; the requester’s presses on two replicas act once', async () => {
    await register('api', 'api-1');
    const { value } = await ask(a, 'deregister api api-1', 'ask-2');
    const foreign = await press(b, VISITOR, CONFIRM_ACTION, value, 'press-visitor');
    expect(foreign.status).toBe(200);
    const refusal = await waitResponse('press-visitor');
    expect(refusal.body).toMatchObject({ response_type: 'ephemeral', replace_original: false });
    expect(refusal.body.text).toBe('Only <@U0ONCALL>, who ran this command, can confirm or cancel it; nothing was changed.');
    expect(await ws.instanceValue('api', 'api-1')).toBe('10.0.0.1:80');

    await Promise.all([press(a, ONCALL, CONFIRM_ACTION, value, 'press-a'), press(b, ONCALL, CONFIRM_ACTION, value, 'press-b')]);
    const done = await Promise.race([
      waitResponse('press-a', (c) => String(c.body.text).includes('deregistered api/api-1')),
      waitResponse('press-b', (c) => String(c.body.text).includes('deregistered api/api-1')),
    ]);
    expect(done.body.replace_original).toBe(true);
    const loser = done.method === 'press-a' ? 'press-b' : 'press-a';
    const repeated = await waitResponse(loser, (c) => c.body.response_type === 'ephemeral');
    expect(repeated.body.text).toBe('This was already confirmed by <@U0ONCALL>; the command runs at most once.');
    expect(await ws.instanceValue('api', 'api-1')).toBeNull();
    expect(standIn.responses().filter((c) => String(c.body.text).includes('deregistered api/api-1'))).toHaveLength(1);
    // The confirmed run shows progress and then the result in the same message.
    expect(standIn.responses(done.method).map((c) => c.body.replace_original)).toEqual([true, true]);
    expect(standIn.responses(done.method)[0]!.body.text).toBe('confirmed by U0ONCALL — running deregister api api-1');
  });

  it('cancel changes nothing, and a later confirm of the same request is refused', async () => {
    await register('shop', 'shop-1');
    const keys = await keysOf('shop');
    const { value } = await ask(b, 'deregister shop shop-1', 'ask-3');
    await press(a, ONCALL, CANCEL_ACTION, value, 'press-cancel');
    const cancelled = await waitResponse('press-cancel');
    expect(cancelled.body).toMatchObject({ replace_original: true, text: 'Cancelled: deregister shop shop-1 was not run' });
    await press(b, ONCALL, CONFIRM_ACTION, value, 'press-after-cancel');
    expect((await waitResponse('press-after-cancel')).body.text).toBe('This was already cancelled by <@U0ONCALL>; the command runs at most once.');
    expect(await ws.instanceValue('shop', 'shop-1')).toBe('10.0.0.1:80');
    expect(await keysOf('shop')).toEqual(keys);
  });

  it('refuses an expired press, clearly, and changes nothing', async () => {
    await register('mail', 'mail-1');
    const keys = await keysOf('mail');
    const { value } = await ask(quick, 'deregister mail mail-1', 'ask-4');
    await until('the confirmation to expire', () => Date.now() > (JSON.parse(value) as { expiresAt: number }).expiresAt + 50);
    await press(quick, ONCALL, CONFIRM_ACTION, value, 'press-late');
    const late = await waitResponse('press-late');
    expect(late.body).toMatchObject({ response_type: 'ephemeral', replace_original: false });
    expect(late.body.text).toBe('This confirmation expired (they last 1 s); nothing was changed. Run the command again if you still need it.');
    expect(await ws.instanceValue('mail', 'mail-1')).toBe('10.0.0.1:80');
    expect(await keysOf('mail')).toEqual(keys);
    const metrics = await quick.runtime.metrics.registry.metrics();
    expect(metrics).toMatch(/switchyard_confirmations_total\{result="expired"\} 1/);
  });

  it('still takes --yes from Slack, like the shell', async () => {
    await register('docs', 'docs-1');
    await postSlashCommand(a.events, SIGNING_SECRET, {
      text: 'deregister docs docs-1 --yes',
      user_id: ONCALL,
      channel_id: OPS_CHANNEL,
      response_url: standIn.responseUrl('yes'),
    });
    await waitResponse('yes', (c) => String(c.body.text).includes('deregistered docs/docs-1'));
    expect(await ws.instanceValue('docs', 'docs-1')).toBeNull();
  });
});
