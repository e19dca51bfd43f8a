import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runShell } from '../src/adapters/shell/shell.js';
import { APPROVE_ACTION, REJECT_ACTION } from '../src/adapters/slack/approval.js';
import type { Logger } from '../src/core/log.js';
import { feedPosts, sectionText, SIGNING_SECRET, startReplica, until, type Replica } from './helpers/feed.js';
import { postAction, postSlashCommand, type SlackCall, type SlackStandIn, startSlackStandIn } from './helpers/slack.js';
import { makeWorkspace, ONCALL, OPS_CHANNEL, VISITOR, type Workspace } from './helpers/workspace.js';

const LEAD1 = 'U0LEAD1';
const LEAD2 = 'U0LEAD2';
const LEAD3 = 'U0LEAD3';

const ACL = `groups:
  oncall: [${ONCALL}, ${LEAD1}]
  leads: [${LEAD1}, ${LEAD2}, ${LEAD3}]
rules:
  - allow: [status, help]
    users: ["*"]
  - name: oncall changes
    allow: ["*"]
    groups: [oncall]
    channels: [${OPS_CHANNEL}, dm]
  - name: payments need a lead
    allow: [register, deregister, drain, undrain]
    groups: [oncall]
    services: ["pay-*"]
    approval: { groups: [leads], count: 1 }
  - name: prod removals need two leads
    allow: [deregister]
    groups: [oncall]
    services: ["prod-*"]
    approval: { groups: [leads], count: 2 }
  - name: scratch expires fast
    allow: [register]
    groups: [oncall]
    services: ["tmp-*"]
    approval: { groups: [leads], expiry: 2s }
  - name: weights from a terminal too
    allow: [weight]
    groups: [oncall]
    services: ["pay-*"]
    approval: { groups: [leads] }
    shell: allow
`;

interface AuditLine {
  audit?: boolean;
  requestId: string;
  user: string;
  command: string;
  result: string;
  code?: string;
  approvedBy?: string[];
  approval?: { id: string; vote?: string; outcome: string };
}

/** A logger that keeps what it writes, so tests can read the audit trail. */
function recordingLog(): { log: Logger; audits: () => AuditLine[] } {
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
  return {
    log,
    audits: () => lines.map((l) => JSON.parse(l) as AuditLine).filter((l) => l.audit === true),
  };
}

/** Two `serve` replicas (a posts the feed); presses may reach either. */
describe('two-person approval (real etcd, signed block_actions, Web API stand-in)', () => {
  let ws: Workspace;
  let standIn: SlackStandIn;
  let a: Replica;
  let b: Replica;
  const rec = recordingLog();

  beforeAll(async () => {
    ws = await makeWorkspace({ acl: ACL });
    standIn = await startSlackStandIn();
    [a, b] = await Promise.all([
      startReplica({ configPath: ws.configPath, standIn, feed: true, slack: true, log: rec.log, approvalSweepMs: 200 }),
      startReplica({ configPath: ws.configPath, standIn, feed: false, slack: true, log: rec.log, approvalSweepMs: 200 }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([a, b].map((r) => r?.stop()));
    await standIn?.close();
    await ws?.dispose();
  });

  const waitResponse = (id: string, predicate: (c: SlackCall) => boolean = () => true) =>
    standIn.waitFor((c) => c.kind === 'response' && c.method === id && predicate(c), 10_000);
  const blocksOf = (c: SlackCall) => JSON.stringify(c.body.blocks ?? []);

  /** Ask by slash command; resolves with the posted request (its ts and button value) and the requester's reply. */
  const ask = async (replica: Replica, user: string, text: string, id: string) => {
    await postSlashCommand(replica.events, SIGNING_SECRET, { text, user_id: user, channel_id: OPS_CHANNEL, response_url: standIn.responseUrl(id) });
    const reply = await waitResponse(id, (c) => c.body.replace_original === true && !String(c.body.text).startsWith('running'));
    const posted = await standIn.waitFor(
      (c) =>
        c.kind === 'api' &&
        c.method === 'chat.postMessage' &&
        c.body.channel === OPS_CHANNEL &&
        blocksOf(c).includes(APPROVE_ACTION) &&
        blocksOf(c).includes(text),
      10_000,
    );
    const actions = (posted.body.blocks as { type: string; elements?: { action_id: string; value: string }[] }[]).find((blk) => blk.type === 'actions')!;
    const value = actions.elements!.find((e) => e.action_id === APPROVE_ACTION)!.value;
    return { reply, posted, value, id: (JSON.parse(value) as { id: string }).id };
  };
  const press = (replica: Replica, user: string, actionId: string, value: string, id: string) =>
    postAction(replica.events, SIGNING_SECRET, { userId: user, actionId, value, responseUrl: standIn.responseUrl(id) });
  /** Edits of a request message (chat.update), newest last. */
  const edits = (requestText: string) => standIn.api('chat.update').filter((c) => c.body.channel === OPS_CHANNEL && String(c.body.text).includes(requestText));
  const record = async (id: string) => {
    const raw = await ws.etcd.get(`${ws.prefixes.switchyard}/approvals/${id}`).string();
    return raw === null ? null : (JSON.parse(raw) as { status: string; approvers: string[]; text: string; requester: string });
  };

  it('records the request instead of running it; the requester and ineligible people cannot approve; a second lead can, and it runs as the requester', async () => {
    const text = 'register pay-api pay-1 10.0.0.1:80';
    const req = await ask(a, ONCALL, text, 'ask-1');
    expect(req.reply.body.text).toContain('was not run: it needs approval by 1 of leads');
    expect(req.posted.body.text).toBe(`Approval needed: ${ONCALL} asked to run ${text} (1 of leads)`);
    const shown = blocksOf(req.posted);
    expect(shown).toContain(`<@${ONCALL}> asked to run \`${text}\``);
    expect(shown).toContain('Why: needs approval by 1 of leads (rule \\"payments need a lead\\" at acl.yaml:11)');
    expect(shown).toMatch(/Expires in 1[45] min/);
    expect(shown).toContain(REJECT_ACTION);
    expect(await ws.instanceValue('pay-api', 'pay-1')).toBeNull();
    expect(await record(req.id)).toMatchObject({ status: 'pending', approvers: [], text, requester: ONCALL });

    // ONCALL is not a lead; VISITOR is nobody: both refused, and so is the requester.
    await press(b, ONCALL, APPROVE_ACTION, req.value, 'press-self');
    expect((await waitResponse('press-self')).body).toMatchObject({
      response_type: 'ephemeral',
      replace_original: false,
      text: 'You asked for this command, so you cannot approve or reject it; 1 of leads can. Nothing was changed.',
    });
    await press(a, VISITOR, APPROVE_ACTION, req.value, 'press-visitor');
    expect((await waitResponse('press-visitor')).body.text).toBe(
      'Only members of leads other than the requester can approve or reject this (rule "payments need a lead" at acl.yaml:11). Nothing was changed.',
    );
    expect(await ws.instanceValue('pay-api', 'pay-1')).toBeNull();
    expect(await record(req.id)).toMatchObject({ status: 'pending', approvers: [] });

    await press(b, LEAD2, APPROVE_ACTION, req.value, 'press-lead');
    await until('the approved command to run', async () => (await ws.instanceValue('pay-api', 'pay-1')) === '10.0.0.1:80');
    await until('the request message to show the result', () => edits(text).some((c) => blocksOf(c).includes('registered pay-api/pay-1')));
    const done = edits(text).find((c) => blocksOf(c).includes('registered pay-api/pay-1'))!;
    expect(blocksOf(done)).toContain(`asked by <@${ONCALL}>, approved by <@${LEAD2}>: ran once.`);
    expect(blocksOf(done)).not.toContain(APPROVE_ACTION);
    expect(await record(req.id)).toMatchObject({ status: 'approved', approvers: [LEAD2] });

    // The audit trail: the request, each press, and the run — as the requester, naming the approver.
    const audits = rec.audits();
    const run = audits.find((l) => l.requestId === `approval-${req.id}`);
    expect(run).toMatchObject({ user: ONCALL, command: 'register', result: 'ok', approvedBy: [LEAD2], approval: { id: req.id, outcome: 'ran' } });
    expect(audits.filter((l) => l.approval?.id === req.id).map((l) => [l.user, l.result, l.approval?.outcome])).toEqual([
      [ONCALL, 'approval_needed', 'requested'],
      [ONCALL, 'denied', 'requester'],
      [VISITOR, 'denied', 'ineligible'],
      [LEAD2, 'ok', 'approved'],
      [ONCALL, 'ok', 'ran'],
    ]);

    // The #ops line names both people.
    await until('the feed line', () => feedPosts(standIn).some((p) => sectionText(p).includes('pay-api/pay-1')), 15_000);
    const line = feedPosts(standIn)
      .map(sectionText)
      .find((t) => t.includes('pay-api/pay-1'))!;
    expect(line).toContain(`— by <@${ONCALL}> via \`register\`, approved by <@${LEAD2}>`);
    // And the request and its outcome as approval events, once each.
    const requested = () => feedPosts(standIn).filter((p) => sectionText(p).includes(`${ONCALL} asked to run "${text}": waiting for approval by 1 of leads`));
    await until('the request event', () => requested().length > 0);
    expect(requested()).toHaveLength(1);
    await until('the approval event', () => feedPosts(standIn).some((p) => sectionText(p).includes(`"${text}" asked by ${ONCALL} was approved by ${LEAD2}`)));
  });

  it('count: 2 needs two distinct approvers; the same lead twice does not count', async () => {
    expect(
      (await a.runtime.router.dispatch({ text: 'register prod-db prod-1 10.0.0.3:80', caller: { userId: ONCALL, channel: OPS_CHANNEL, source: 'slack' } })).ok,
    ).toBe(true);
    // Confirmation comes first (the last ready instance): the approvers see the --yes.
    const text = 'deregister prod-db prod-1 --yes';
    const req = await ask(a, ONCALL, text, 'ask-2');
    expect(req.reply.body.text).toContain('needs approval by 2 of leads');

    await press(a, LEAD1, APPROVE_ACTION, req.value, 'press-2a');
    await until('the first approval to show', () => edits(text).some((c) => blocksOf(c).includes(`approved so far by <@${LEAD1}> (1 of 2)`)));
    await press(b, LEAD1, APPROVE_ACTION, req.value, 'press-2b');
    expect((await waitResponse('press-2b')).body.text).toBe(`You already approved this (<@${LEAD1}>); it needs 1 more from someone else.`);
    expect(await ws.instanceValue('prod-db', 'prod-1')).toBe('10.0.0.3:80');
    expect(await record(req.id)).toMatchObject({ status: 'pending', approvers: [LEAD1] });

    await press(b, LEAD3, APPROVE_ACTION, req.value, 'press-2c');
    await until('the approved removal', async () => (await ws.instanceValue('prod-db', 'prod-1')) === null);
    await until('the result on the message', () => edits(text).some((c) => blocksOf(c).includes(`approved by <@${LEAD1}>, <@${LEAD3}>: ran once.`)));
    expect(rec.audits().find((l) => l.requestId === `approval-${req.id}`)).toMatchObject({ command: 'deregister', result: 'ok', approvedBy: [LEAD1, LEAD3] });
  });

  it('reject by an eligible approver ends it; a later approve is refused', async () => {
    const text = 'register pay-web pay-9 10.0.0.9:80';
    const req = await ask(b, ONCALL, text, 'ask-3');
    await press(a, LEAD3, REJECT_ACTION, req.value, 'press-reject');
    await until('the rejection on the message', () => edits(text).some((c) => blocksOf(c).includes(`was rejected by <@${LEAD3}>: nothing was run.`)));
    await press(b, LEAD2, APPROVE_ACTION, req.value, 'press-after-reject');
    expect((await waitResponse('press-after-reject')).body.text).toBe(`This was already rejected by <@${LEAD3}>; nothing was run.`);
    expect(await ws.instanceValue('pay-web', 'pay-9')).toBeNull();
    expect(await record(req.id)).toMatchObject({ status: 'rejected' });
  });

  it('two approvals pressed at once on two replicas run the command once', async () => {
    const text = 'register pay-db pay-db-1 10.0.0.2:80';
    const req = await ask(a, ONCALL, text, 'ask-4');
    await Promise.all([press(a, LEAD2, APPROVE_ACTION, req.value, 'press-4a'), press(b, LEAD3, APPROVE_ACTION, req.value, 'press-4b')]);
    await until('the approved command to run', async () => (await ws.instanceValue('pay-db', 'pay-db-1')) === '10.0.0.2:80');
    // The losing press is told, which is the positive sign that both were processed.
    const loser = await Promise.race([
      waitResponse('press-4a', (c) => String(c.body.text).startsWith('This was already approved by')),
      waitResponse('press-4b', (c) => String(c.body.text).startsWith('This was already approved by')),
    ]);
    expect(loser.body.response_type).toBe('ephemeral');
    await until('the result on the message', () => edits(text).some((c) => blocksOf(c).includes('ran once')));
    const runs = rec.audits().filter((l) => l.requestId === `approval-${req.id}`);
    expect(runs).toHaveLength(1);
    expect(runs[0]!.approvedBy).toHaveLength(1);
    expect(edits(text).filter((c) => blocksOf(c).includes('ran once'))).toHaveLength(1);
    await until('the approval event', () => feedPosts(standIn).some((p) => sectionText(p).includes(`"${text}" asked by ${ONCALL} was approved by`)));
    expect(feedPosts(standIn).filter((p) => sectionText(p).includes(`"${text}" asked by ${ONCALL} was approved by`))).toHaveLength(1);
  });

  it('survives a restart between the request and the approval', async () => {
    const first = await startReplica({ configPath: ws.configPath, standIn, feed: false, slack: true, log: rec.log });
    let req: Awaited<ReturnType<typeof ask>>;
    try {
      req = await ask(first, ONCALL, 'register pay-api pay-2 10.0.0.4:80', 'ask-5');
    } finally {
      await first.stop();
    }
    const second = await startReplica({ configPath: ws.configPath, standIn, feed: false, slack: true, log: rec.log });
    try {
      await press(second, LEAD1, APPROVE_ACTION, req.value, 'press-5');
      await until('the message to show it ran', () => edits('register pay-api pay-2').some((c) => blocksOf(c).includes('registered pay-api/pay-2')));
      expect(await ws.instanceValue('pay-api', 'pay-2')).toBe('10.0.0.4:80');
      expect(await record(req.id)).toMatchObject({ status: 'approved', approvers: [LEAD1] });
    } finally {
      await second.stop();
    }
  });

  it('expires: the message says so, a late press is refused, nothing runs', async () => {
    const text = 'register tmp-x tmp-1 10.0.0.7:80';
    const req = await ask(a, ONCALL, text, 'ask-6');
    expect(blocksOf(req.posted)).toMatch(/Expires in [12] s/);
    await until('the expiry on the message', () => edits(text).some((c) => blocksOf(c).includes('expired with 0 of 1 approvals: nothing was run.')), 15_000);
    await press(b, LEAD2, APPROVE_ACTION, req.value, 'press-late');
    expect((await waitResponse('press-late')).body.text).toBe('This approval request expired; nothing was run. Run the command again if it is still needed.');
    expect(await ws.instanceValue('tmp-x', 'tmp-1')).toBeNull();
    expect(rec.audits().filter((l) => l.approval?.id === req.id && l.result === 'expired')).toHaveLength(1);
  });

  it('checks each press against the ACL as it is at the press, not as it was at the request', async () => {
    const text = 'register pay-api pay-3 10.0.0.6:80';
    const req = await ask(a, ONCALL, text, 'ask-7');
    const aclPath = join(ws.dir, 'acl.yaml');
    // LEAD3 leaves the leads group after the request was posted.
    await writeFile(aclPath, ACL.replace(`leads: [${LEAD1}, ${LEAD2}, ${LEAD3}]`, `leads: [${LEAD1}, ${LEAD2}]`));
    try {
      for (const r of [a, b]) expect(await r.runtime.acl.reload()).toMatchObject({ ok: true });
      await press(b, LEAD3, APPROVE_ACTION, req.value, 'press-7');
      expect((await waitResponse('press-7')).body.text).toMatch(/^Only members of leads other than the requester can approve or reject this/);
      expect(await record(req.id)).toMatchObject({ status: 'pending', approvers: [] });
      expect(await ws.instanceValue('pay-api', 'pay-3')).toBeNull();
    } finally {
      await writeFile(aclPath, ACL);
      for (const r of [a, b]) await r.runtime.acl.reload();
    }
  });

  it('the shell refuses an approval-required command with the reason, unless the rule says shell: allow', async () => {
    const out: string[] = [];
    const input = new PassThrough();
    const session = runShell({
      dispatcher: a.runtime.router,
      caller: { userId: ONCALL, channel: 'dm', source: 'shell' },
      input,
      write: (t) => void out.push(t),
    });
    input.end('undrain pay-api pay-1\nweight pay-api pay-1 7\n');
    const summary = await session;
    expect(summary).toEqual({ commands: 2, failed: 1 });
    expect(out[0]).toBe(
      'error: undrain on pay-api needs approval by 1 of leads (rule "payments need a lead" at acl.yaml:11); approvals are given in Slack, so the shell refuses it: nothing was changed\n',
    );
    expect(out[1]).toMatch(/^pay-api\/pay-1 weight \S+ → 7/);
    const state = await ws.etcd.get(`${ws.prefixes.switchyard}/state/pay-api/pay-1`).string();
    expect(JSON.parse(state ?? '{}')).toMatchObject({ weight: 7 });
    // Neither was recorded for approval.
    expect(
      rec
        .audits()
        .filter((l) => l.user === ONCALL && (l.command === 'undrain' || l.command === 'weight'))
        .map((l) => [l.command, l.result, l.code]),
    ).toEqual([
      ['undrain', 'denied', 'E_APPROVAL_REQUIRED'],
      ['weight', 'ok', undefined],
    ]);
  });
});
