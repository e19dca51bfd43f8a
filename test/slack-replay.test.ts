/**
 * Exactly once per Slack request, with the seen-set in etcd: a byte-for-byte replay of a
 * signed slash command, a Slack retry of an event and a replayed Confirm press each run
 * once — on the replica that ran them, on a second replica, and on a restarted one.
 */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIRM_ACTION } from '../src/adapters/slack/confirm.js';
import { EtcdDeduper, SEEN_TTL_SEC } from '../src/adapters/etcd/dedupe.js';
import { SIGNING_SECRET, startReplica, until, type Replica } from './helpers/feed.js';
import { newTs, postAction, postEvent, postSlashCommand, resend, type SlackCall, type SlackStandIn, startSlackStandIn } from './helpers/slack.js';
import { makeWorkspace, ONCALL, OPS_CHANNEL, type Workspace } from './helpers/workspace.js';

interface LogLine {
  msg: string;
  level: number;
  audit?: boolean;
  requestId?: string;
  command?: string;
  result?: string;
  duplicateOf?: string;
  matched?: string;
  retryNum?: number;
  kind?: string;
}

describe('exactly once per Slack request across replicas and restarts (real etcd, signed requests)', () => {
  let ws: Workspace;
  let standIn: SlackStandIn;
  let a: Replica;
  let b: Replica;
  const lines: LogLine[] = [];
  // Every replica logs here: the audit trail (one record per executed command) and the
  // de-duplication's info lines are what the assertions count.
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  const replica = () => startReplica({ configPath: ws.configPath, standIn, feed: false, slack: true, log });

  beforeAll(async () => {
    ws = await makeWorkspace();
    standIn = await startSlackStandIn();
    [a, b] = await Promise.all([replica(), replica()]);
  });

  afterAll(async () => {
    await Promise.all([a, b].map((r) => r?.stop()));
    await standIn?.close();
    await ws?.dispose();
  });

  const audits = (requestId: string) => lines.filter((l) => l.audit === true && l.requestId === requestId);
  const duplicates = (requestId: string) => lines.filter((l) => l.msg === 'duplicate Slack request acknowledged, not executed' && l.requestId === requestId);
  const waitResponse = (id: string, predicate: (c: SlackCall) => boolean = () => true) =>
    standIn.waitFor((c) => c.kind === 'response' && c.method === id && predicate(c), 10_000);
  /** Restart `which` (a fresh process-like replica: nothing in memory survives). */
  const restart = async (which: Replica): Promise<Replica> => {
    await which.stop();
    return replica();
  };

  it('runs a replayed slash command once: replayed to the same replica, to a second one, to a restarted one', async () => {
    const first = await postSlashCommand(a.events, SIGNING_SECRET, {
      text: 'register web web-1 10.0.0.1:80',
      user_id: ONCALL,
      channel_id: OPS_CHANNEL,
      response_url: standIn.responseUrl('reg-1'),
      trigger_id: '1001.2002.slashreplay',
    });
    expect(first.status).toBe(200);
    await waitResponse('reg-1', (c) => String(c.body.text).includes('registered web/web-1'));

    const sameReplica = await resend(first.request);
    const otherReplica = await resend(first.request, b.events);
    a = await restart(a);
    const restarted = await resend(first.request, a.events);
    // Acknowledged (so Slack would stop), with nothing to show: no "running …" for a duplicate.
    for (const res of [sameReplica, otherReplica, restarted]) expect({ status: res.status, text: res.text }).toEqual({ status: 200, text: '' });

    // The positive sign that each replay was looked at: one info line each, naming the original.
    await until('three duplicates logged', () => duplicates('1001.2002.slashreplay').length === 3);
    expect(duplicates('1001.2002.slashreplay').every((l) => l.level === 30 && l.duplicateOf === '1001.2002.slashreplay' && l.kind === 'command')).toBe(true);
    expect(audits('1001.2002.slashreplay')).toHaveLength(1);
    const kv = await ws.etcd.get(`${ws.prefixes.services}/web/web-1`).exec();
    expect(kv.kvs[0]!.version).toBe('1');
    expect(standIn.responses('reg-1').filter((c) => String(c.body.text).includes('registered web/web-1'))).toHaveLength(1);

    // The seen-set: under <switchyardPrefix>/dedupe/, the trigger_id and a hash of the
    // signature (never the signature itself), on a lease longer than the 10-minute window.
    const keys = await ws.etcd.getAll().prefix(`${ws.prefixes.switchyard}/dedupe/`).keys();
    expect(keys).toContain(`${ws.prefixes.switchyard}/dedupe/trigger/1001.2002.slashreplay`);
    const sigKeys = keys.filter((k) => k.startsWith(`${ws.prefixes.switchyard}/dedupe/sig/`));
    expect(sigKeys.length).toBeGreaterThanOrEqual(1);
    for (const k of sigKeys) expect(k).toMatch(/\/sig\/[0-9a-f]{64}$/);
    expect(keys.join(' ')).not.toContain(first.request.headers['x-slack-signature']!.slice(3));
    const held = await ws.etcd.get(`${ws.prefixes.switchyard}/dedupe/trigger/1001.2002.slashreplay`).exec();
    const lease = await ws.etcd.leaseClient.leaseTimeToLive({ ID: held.kvs[0]!.lease, keys: false });
    expect(Number(lease.TTL)).toBeGreaterThan(10 * 60);
    expect(Number(lease.grantedTTL)).toBeGreaterThanOrEqual(SEEN_TTL_SEC);
  });

  it('runs an event once when Slack retries it on the other replica and after that replica restarts', async () => {
    const event = { type: 'message', channel_type: 'im', channel: 'D0ONCALL', user: ONCALL, text: 'register api api-1 10.0.0.2:80', ts: newTs() };
    const first = await postEvent(a.events, SIGNING_SECRET, event);
    expect(first.status).toBe(200);
    await standIn.waitFor((c) => c.method === 'chat.postMessage' && String(c.body.text).includes('registered api/api-1'), 10_000);
    // Slack's retries are signed afresh: only the event_id ties them to the first delivery.
    const retry1 = await postEvent(b.events, SIGNING_SECRET, event, { eventId: first.eventId, retryNum: 1, retryReason: 'http_timeout' });
    b = await restart(b);
    const retry3 = await postEvent(b.events, SIGNING_SECRET, event, { eventId: first.eventId, retryNum: 3, retryReason: 'http_timeout' });
    expect([retry1.status, retry3.status]).toEqual([200, 200]);

    await until('two duplicates logged', () => duplicates(first.eventId).length === 2);
    expect(duplicates(first.eventId).map((l) => [l.matched, l.retryNum])).toEqual([
      ['event', 1],
      ['event', 3],
    ]);
    expect(audits(first.eventId)).toHaveLength(1);
    expect((await ws.etcd.get(`${ws.prefixes.services}/api/api-1`).exec()).kvs[0]!.version).toBe('1');
    expect(standIn.api('chat.postMessage').filter((c) => String(c.body.text).includes('registered api/api-1'))).toHaveLength(1);
  });

  it('the etcd seen-set says "new" exactly once per key, for claims racing in one batch and across replicas', async () => {
    const onA = new EtcdDeduper(a.runtime.registry);
    const onB = new EtcdDeduper(b.runtime.registry);
    const rec = (requestId: string) => ({ requestId, at: new Date().toISOString() });
    // 40 requests, each delivered three times at once: twice to A (same batch), once to B.
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => {
        const keys = [`trigger/race-${i}`, `sig/${String(i).padStart(64, '0')}`];
        return Promise.all([onA.claim(keys, rec(`race-${i}`)), onA.claim(keys, rec(`race-${i}`)), onB.claim(keys, rec(`race-${i}`))]);
      }),
    );
    for (const [i, deliveries] of results.entries()) {
      expect(deliveries.filter((r) => !r.duplicate)).toHaveLength(1);
      for (const r of deliveries) if (r.duplicate) expect(r.original).toEqual({ requestId: `race-${i}`, at: expect.any(String) });
    }
    // Either identity alone is enough: a new trigger_id with a seen signature is a duplicate.
    expect(await onB.claim(['trigger/race-new', `sig/${'0'.repeat(63)}7`], rec('x'))).toMatchObject({ duplicate: true, key: `sig/${'0'.repeat(63)}7` });
  });

  it('refuses to run a request when etcd cannot say whether it is new', async () => {
    const dead = await startReplica({ configPath: ws.configPath, standIn, feed: false, slack: true, log, endpoints: ['http://127.0.0.1:1'] });
    try {
      const res = await postSlashCommand(dead.events, SIGNING_SECRET, {
        text: 'register web web-dead 10.0.0.9:80',
        user_id: ONCALL,
        channel_id: OPS_CHANNEL,
        response_url: standIn.responseUrl('dead'),
        trigger_id: '77.77.dead',
      });
      expect(res.status).toBe(200);
      // Refused connections are retried until etcd.commandTimeout, past Slack's ack deadline:
      // acked first, the refusal follows on response_url.
      // The claim's budget (at least 10 s) runs out first; then the refusal is said.
      const said = await standIn.waitFor(
        (c) => c.kind === 'response' && c.method === 'dead' && String(c.body.text).includes('did not run it; nothing was changed'),
        40_000,
      );
      expect(said.body.response_type).toBe('ephemeral');
      expect(lines.some((l) => l.msg === 'could not check whether a Slack request already ran; it was not executed' && l.requestId === '77.77.dead')).toBe(
        true,
      );
      expect(audits('77.77.dead')).toHaveLength(0);
    } finally {
      await dead.stop();
    }
  }, 60_000);

  it('runs a replayed Confirm press once, whichever replica the copies reach', async () => {
    const reg = await a.runtime.router.dispatch({ text: 'register db db-1 10.0.0.3:5432', caller: { userId: ONCALL, channel: OPS_CHANNEL, source: 'slack' } });
    expect(reg.ok).toBe(true);
    await postSlashCommand(a.events, SIGNING_SECRET, {
      text: 'deregister db db-1',
      user_id: ONCALL,
      channel_id: OPS_CHANNEL,
      response_url: standIn.responseUrl('ask'),
    });
    const ask = await waitResponse('ask', (c) => JSON.stringify(c.body.blocks ?? []).includes(CONFIRM_ACTION));
    const actions = (ask.body.blocks as { type: string; elements?: { action_id: string; value: string }[] }[]).find((blk) => blk.type === 'actions')!;
    const value = actions.elements!.find((e) => e.action_id === CONFIRM_ACTION)!.value;

    const press = await postAction(a.events, SIGNING_SECRET, { userId: ONCALL, actionId: CONFIRM_ACTION, value, responseUrl: standIn.responseUrl('press') });
    expect(press.status).toBe(200);
    await waitResponse('press', (c) => String(c.body.text).includes('deregistered db/db-1'));
    const trigger = (JSON.parse(new URLSearchParams(press.request.body).get('payload')!) as { trigger_id: string }).trigger_id;

    const replays = await Promise.all([resend(press.request), resend(press.request, b.events)]);
    expect(replays.map((r) => r.status)).toEqual([200, 200]);
    await until('two duplicate presses logged', () => duplicates(trigger).length === 2);
    expect(duplicates(trigger).every((l) => l.kind === 'interaction')).toBe(true);

    const deregistrations = lines.filter((l) => l.audit === true && l.command === 'deregister' && l.result === 'ok');
    expect(deregistrations).toHaveLength(1);
    expect(await ws.instanceValue('db', 'db-1')).toBeNull();
    // The replays never reached the confirmation store: no "already confirmed" answer either.
    expect(standIn.responses('press').map((c) => c.body.replace_original)).toEqual([true, true]);
  });
});
