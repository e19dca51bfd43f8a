/**
 * The approval gate's decisions without etcd or Slack: who may press, what each press does to
 * the record, what it audits and tells #ops, and how a completed approval runs the command.
 * test/approval.test.ts proves the same flows end to end (real etcd, signed Slack requests);
 * this file pins each decision so mutation testing (docs/TESTING.md) can check it. The store is
 * an in-memory compare-and-swap behind the same ApprovalStore interface; every fixture is
 * built inside its test.
 */
import pino from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { AclDecision, AclEvaluator, AclRequest, ApprovalRequirement } from '../src/core/acl-types.js';
import { APPROVAL_KEEP_MS, ApprovalGate, closedText, type ApprovalRecord, type ApprovalRequest, type ApprovalStore } from '../src/core/approval.js';
import type { AuditRecord } from '../src/core/audit.js';
import type { DispatchRequest } from '../src/core/dispatch.js';
import type { FeedEvent } from '../src/core/feed.js';
import type { Reply } from '../src/core/reply.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const MINUTE = 60_000;

/** An in-memory store; `stale` makes the next update see an older copy first, as a lost CAS race does. */
function memoryStore() {
  const records = new Map<string, ApprovalRecord>();
  const created: { request: ApprovalRequest; keepMs: number }[] = [];
  let stale: ApprovalRecord | undefined;
  let n = 0;
  const store: ApprovalStore = {
    async create(request, opts) {
      created.push({ request, keepMs: opts.keepMs });
      const rec: ApprovalRecord = { ...request, id: `ap${++n}`, status: 'pending', approvers: [] };
      records.set(rec.id, rec);
      return rec;
    },
    async get(id) {
      return records.get(id);
    },
    async update(id, change) {
      const cur = records.get(id);
      if (!cur) return undefined;
      if (stale) {
        change(stale);
        stale = undefined;
      }
      const next = change(cur);
      if (!next) return { record: cur, changed: false };
      records.set(id, next);
      return { record: next, changed: true };
    },
    async list() {
      return [...records.values()];
    },
  };
  return { store, records, created, raceWith: (r: ApprovalRecord) => void (stale = r) };
}

const leads = (over: Partial<ApprovalRequirement> = {}): ApprovalRequirement => ({
  rule: 'rule #2 (payments)',
  groups: ['leads'],
  count: 2,
  expiryMs: 30 * MINUTE,
  shellAllowed: false,
  approvers: new Set(['L1', 'L2', 'L3']),
  ...over,
});

/** An ACL whose answer the test can change between presses; it records what it was asked. */
function switchableAcl(initial: AclDecision) {
  let decision = initial;
  const asked: AclRequest[] = [];
  const acl: AclEvaluator = {
    decide: (r) => {
      asked.push(r);
      return decision;
    },
  };
  return { acl, asked, set: (d: AclDecision) => void (decision = d) };
}

const needs = (req: ApprovalRequirement): AclDecision => ({ allowed: false, reason: `needs approval by ${req.count} of leads`, approval: req });

function gate(opts: { decision?: AclDecision; reply?: Reply | Error } = {}) {
  const mem = memoryStore();
  const acl = switchableAcl(opts.decision ?? needs(leads()));
  const audits: AuditRecord[] = [];
  const feed: FeedEvent[] = [];
  const dispatched: DispatchRequest[] = [];
  const logs: Record<string, unknown>[] = [];
  const clock = { now: T0 };
  const g = new ApprovalGate({
    store: mem.store,
    acl: acl.acl,
    dispatcher: () => ({
      dispatch: async (req) => {
        dispatched.push(req);
        const r = opts.reply ?? { ok: true, summary: 'ran it' };
        if (r instanceof Error) throw r;
        return r;
      },
    }),
    audit: { record: (r) => audits.push(r) },
    feed: { publish: (e) => feed.push(e) },
    log: pino({ level: 'debug' }, { write: (l: string) => void logs.push(JSON.parse(l) as Record<string, unknown>) }),
    now: () => clock.now,
  });
  const ask = (over: { text?: string; service?: string; requirement?: ApprovalRequirement } = {}) =>
    g.request({
      text: over.text ?? 'scale payments 0',
      command: 'scale',
      ...('service' in over ? (over.service === undefined ? {} : { service: over.service }) : { service: 'payments' }),
      caller: { userId: 'U9', channel: 'COPS', source: 'slack' },
      requirement: over.requirement ?? leads(),
      why: 'needs approval by 2 of leads',
    });
  return { g, ask, audits, feed, dispatched, logs, clock, ...mem, acl };
}

describe('ApprovalGate.request', () => {
  it('records the command as typed, who asked where, the rule, and an expiry; keeps it ten minutes past that', async () => {
    const { ask, created, feed } = gate();
    const rec = await ask();
    expect(created).toEqual([
      {
        request: {
          text: 'scale payments 0',
          command: 'scale',
          service: 'payments',
          requester: 'U9',
          channel: 'COPS',
          rule: 'rule #2 (payments)',
          why: 'needs approval by 2 of leads',
          groups: ['leads'],
          count: 2,
          expiresAt: T0 + 30 * MINUTE,
        },
        keepMs: 30 * MINUTE + APPROVAL_KEEP_MS,
      },
    ]);
    expect(APPROVAL_KEEP_MS).toBe(10 * MINUTE);
    expect(rec).toMatchObject({ id: 'ap1', status: 'pending', approvers: [] });
    expect(feed).toEqual([
      {
        kind: 'approval.requested',
        text: 'U9 asked to run "scale payments 0": waiting for approval by 2 of leads (rule #2 (payments))',
        at: '2026-01-01T00:00:00.000Z',
      },
    ]);
  });

  it('a command without a service records none, and the ACL is asked without one at the press', async () => {
    const { g, ask, created, acl } = gate();
    const rec = await ask({ text: 'reload', service: undefined });
    expect('service' in created[0]!.request).toBe(false);
    await g.press(rec.id, 'L1', 'approve');
    expect(acl.asked).toEqual([{ userId: 'U9', channel: 'COPS', command: 'scale' }]);
    expect(Object.keys(acl.asked[0]!)).not.toContain('service');
  });

  it('attaches where the request is shown, and reads records back', async () => {
    const { g, ask } = gate();
    const rec = await ask();
    await g.attachMessage(rec.id, { channel: 'COPS', ts: '1.2' });
    expect((await g.get(rec.id))?.message).toEqual({ channel: 'COPS', ts: '1.2' });
    await g.attachMessage('nope', { channel: 'COPS', ts: '1.3' });
    expect(await g.get('nope')).toBeUndefined();
  });
});

describe('ApprovalGate.press: who may press', () => {
  it('refuses the requester, and audits the refusal as denied', async () => {
    const { g, ask, audits, records } = gate();
    const rec = await ask();
    const res = await g.press(rec.id, 'U9', 'approve');
    expect(res).toMatchObject({ status: 'refused', why: 'requester', text: 'You asked for this command; someone else has to approve or reject it.' });
    expect(records.get(rec.id)).toMatchObject({ status: 'pending', approvers: [] });
    expect(audits).toHaveLength(1);
    expect(audits[0]).toMatchObject({
      requestId: 'approval-ap1-approve-U9',
      user: 'U9',
      channel: 'COPS',
      source: 'slack',
      command: 'scale',
      args: { approval: 'ap1', vote: 'approve', text: 'scale payments 0' },
      result: 'denied',
      code: 'E_DENIED',
      approval: { id: 'ap1', vote: 'approve', outcome: 'requester', approvers: [] },
    });
    expect(audits[0]!.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('refuses someone outside the approver groups, naming groups and rule', async () => {
    const req = leads({ groups: ['leads', 'sre'] });
    const { g, ask, audits } = gate({ decision: needs(req) });
    const rec = await ask({ requirement: req });
    expect(await g.press(rec.id, 'X1', 'reject')).toMatchObject({
      status: 'refused',
      why: 'ineligible',
      text: 'Only members of leads, sre other than the requester can approve or reject this (rule #2 (payments)).',
    });
    expect(audits[0]).toMatchObject({
      requestId: 'approval-ap1-reject-X1',
      result: 'denied',
      code: 'E_DENIED',
      approval: { outcome: 'ineligible', vote: 'reject' },
    });
  });

  it('lets anyone but the requester press when the group is everyone', async () => {
    const req = leads({ groups: ['*'], approvers: '*', count: 1 });
    const { g, ask } = gate({ decision: needs(req) });
    const rec = await ask({ requirement: req });
    expect((await g.press(rec.id, 'ANY1', 'approve')).status).toBe('approved');
  });

  it('checks the ACL as it is at the press: refused now, or no longer needing approval', async () => {
    const { g, ask, acl, audits, records } = gate();
    const rec = await ask();
    acl.set({ allowed: false, reason: 'denied by rule #1' });
    expect(await g.press(rec.id, 'L1', 'approve')).toMatchObject({
      status: 'refused',
      why: 'acl-denies',
      text: 'The ACL now refuses this command (denied by rule #1); it cannot be approved.',
    });
    acl.set({ allowed: true, reason: 'allowed by rule #4' });
    expect(await g.press(rec.id, 'L1', 'approve')).toMatchObject({
      status: 'refused',
      why: 'acl-allows',
      text: 'The ACL no longer asks for approval (allowed by rule #4); the requester can run it directly.',
    });
    // Allowed wins over an approval attached to the same decision.
    acl.set({ allowed: true, reason: 'allowed by rule #5', approval: leads() });
    expect((await g.press(rec.id, 'L1', 'approve')) as { why?: string }).toMatchObject({ why: 'acl-allows' });
    audits.pop();
    expect(acl.asked[0]).toEqual({ userId: 'U9', channel: 'COPS', command: 'scale', service: 'payments' });
    expect(audits.map((a) => [a.result, a.code])).toEqual([
      ['denied', 'E_DENIED'],
      ['invalid', 'E_CONFLICT'],
    ]);
    expect(records.get(rec.id)?.status).toBe('pending');
  });

  it('a member removed from the group since the request can no longer press', async () => {
    const { g, ask, acl } = gate();
    const rec = await ask();
    acl.set(needs(leads({ approvers: new Set(['L2']) })));
    expect((await g.press(rec.id, 'L1', 'approve')).status).toBe('refused');
    expect((await g.press(rec.id, 'L2', 'approve')).status).toBe('counted');
  });
});

describe('ApprovalGate.press: counting, approving, rejecting', () => {
  it('counts distinct approvers, refuses a second vote by the same one, and runs once the count is reached', async () => {
    const { g, ask, audits, feed, dispatched, records } = gate();
    const rec = await ask();
    const first = await g.press(rec.id, 'L1', 'approve');
    expect(first).toEqual({ status: 'counted', record: expect.objectContaining({ status: 'pending', approvers: ['L1'], count: 2 }) });
    expect(dispatched).toEqual([]);
    expect(await g.press(rec.id, 'L1', 'approve')).toMatchObject({
      status: 'refused',
      why: 'already-voted',
      text: 'You already approved this; it needs a different person.',
    });
    const order: string[] = [];
    const progress: string[] = [];
    const done = await g.press(rec.id, 'L2', 'approve', {
      beforeRun: async (r) => void order.push(`beforeRun ${r.status}`),
      onProgress: (t) => progress.push(t),
    });
    expect(done).toMatchObject({ status: 'approved', reply: { ok: true, summary: 'ran it' } });
    expect(records.get(rec.id)).toMatchObject({ status: 'approved', approvers: ['L1', 'L2'], decidedAt: '2026-01-01T00:00:00.000Z' });
    expect(order).toEqual(['beforeRun approved']);
    expect(dispatched).toHaveLength(1);
    const run = dispatched[0]!;
    expect(run).toMatchObject({
      text: 'scale payments 0',
      caller: { userId: 'U9', channel: 'COPS', source: 'slack' },
      requestId: 'approval-ap1',
      approval: { id: 'ap1', approvers: ['L1', 'L2'] },
    });
    run.onProgress?.('half way');
    expect(progress).toEqual(['half way']);
    expect(audits.map((a) => [a.user, a.result, a.code, a.approval?.outcome])).toEqual([
      ['L1', 'ok', undefined, 'counted'],
      ['L1', 'invalid', 'E_CONFLICT', 'already-voted'],
      ['L2', 'ok', undefined, 'approved'],
    ]);
    expect(feed.map((e) => [e.kind, e.text])).toEqual([
      ['approval.requested', expect.any(String)],
      ['approval.approved', '"scale payments 0" asked by U9 was approved by L1, L2: running it'],
    ]);
  });

  it('runs without progress when the front-end gives none', async () => {
    const req = leads({ count: 1 });
    const { g, ask, dispatched } = gate({ decision: needs(req) });
    const rec = await ask({ requirement: req });
    await g.press(rec.id, 'L1', 'approve');
    expect('onProgress' in dispatched[0]!).toBe(false);
  });

  it('takes the count the rule says now, and at least one', async () => {
    const raised = gate();
    const rec = await raised.ask();
    raised.acl.set(needs(leads({ count: 3 })));
    await raised.g.press(rec.id, 'L1', 'approve');
    expect(await raised.g.press(rec.id, 'L2', 'approve')).toMatchObject({ status: 'counted', record: { count: 3, approvers: ['L1', 'L2'] } });

    const zero = gate({ decision: needs(leads({ count: 0 })) });
    const rec0 = await zero.ask();
    expect(await zero.g.press(rec0.id, 'L1', 'approve')).toMatchObject({ status: 'approved', record: { count: 1 } });
  });

  it('one rejection by an eligible person ends it; a later press is told who rejected it', async () => {
    const { g, ask, feed, dispatched, audits, clock } = gate();
    const rec = await ask();
    clock.now = T0 + MINUTE;
    expect(await g.press(rec.id, 'L1', 'reject')).toMatchObject({
      status: 'rejected',
      record: { status: 'rejected', rejectedBy: 'L1', decidedAt: '2026-01-01T00:01:00.000Z' },
    });
    expect(feed.at(-1)).toEqual({
      kind: 'approval.rejected',
      text: '"scale payments 0" asked by U9 was rejected by L1: not run',
      at: '2026-01-01T00:01:00.000Z',
    });
    expect(await g.press(rec.id, 'L2', 'approve')).toMatchObject({
      status: 'refused',
      why: 'closed',
      text: 'This was already rejected by L1; nothing was run.',
    });
    expect(dispatched).toEqual([]);
    expect(audits.map((a) => [a.result, a.code, a.approval?.outcome])).toEqual([
      ['ok', undefined, 'rejected'],
      ['invalid', 'E_CONFLICT', 'closed'],
    ]);
  });

  it('an unknown request is missing, and nothing is audited', async () => {
    const { g, audits } = gate();
    expect(await g.press('nope', 'L1', 'approve')).toEqual({ status: 'missing' });
    expect(audits).toEqual([]);
  });

  it('a press that lost a race is judged on the record the winner wrote', async () => {
    const req = leads({ count: 1 });
    const { g, ask, raceWith, dispatched, records } = gate({ decision: needs(req) });
    const rec = await ask({ requirement: req });
    const pending = records.get(rec.id)!;
    // L2's approval completed it first: L1's first attempt saw the pending copy.
    records.set(rec.id, { ...pending, status: 'approved', approvers: ['L2'], decidedAt: 'x' });
    raceWith(pending);
    expect(await g.press(rec.id, 'L1', 'approve')).toMatchObject({
      status: 'refused',
      why: 'closed',
      text: 'This was already approved by L2; the command runs once.',
    });
    expect(dispatched).toEqual([]);
  });

  it('a store that finds nothing to change (the record went past its CAS) is a closed request', async () => {
    const { g, ask, store, records, audits } = gate();
    const rec = await ask();
    records.set(rec.id, { ...rec, status: 'approved', approvers: ['L2'] });
    store.update = async (id) => ({ record: records.get(id)!, changed: false });
    expect(await g.press(rec.id, 'L1', 'approve')).toMatchObject({
      status: 'refused',
      why: 'closed',
      text: 'This was already approved by L2; the command runs once.',
    });
    expect(audits[0]).toMatchObject({ result: 'invalid', code: 'E_CONFLICT', approval: { outcome: 'closed' } });
  });

  it('a refusal seen first and lost in the race does not stick', async () => {
    const { g, ask, raceWith, records } = gate();
    const rec = await ask();
    const pending = records.get(rec.id)!;
    raceWith({ ...pending, approvers: ['L1'] });
    expect((await g.press(rec.id, 'L1', 'approve')).status).toBe('counted');
  });
});

describe('ApprovalGate: failures around the run', () => {
  it('a front-end that cannot show "running" is logged, and the command still runs', async () => {
    const req = leads({ count: 1 });
    const { g, ask, dispatched, logs } = gate({ decision: needs(req) });
    const rec = await ask({ requirement: req });
    const res = await g.press(rec.id, 'L1', 'approve', { beforeRun: () => Promise.reject(new Error('slack down')) });
    expect(res.status).toBe('approved');
    expect(dispatched).toHaveLength(1);
    expect(logs.find((l) => l.msg === 'could not show the approval before running')).toMatchObject({ level: 40, approval: 'ap1' });
  });

  it('a dispatch that throws becomes an internal error naming the approval, and is logged', async () => {
    const req = leads({ count: 1 });
    const { g, ask, logs } = gate({ decision: needs(req), reply: new Error('boom') });
    const rec = await ask({ requirement: req });
    expect(await g.press(rec.id, 'L1', 'approve')).toMatchObject({
      status: 'approved',
      reply: { ok: false, summary: "internal error (request approval-ap1); details are in the bot's log", code: 'E_INTERNAL' },
    });
    expect(logs.find((l) => l.msg === 'approved command failed in dispatch')).toMatchObject({ level: 50, approval: 'ap1' });
  });
});

describe('ApprovalGate: expiry', () => {
  it('a press at the expiry marks it expired, tells #ops, and runs nothing', async () => {
    const { g, ask, clock, feed, dispatched, audits } = gate();
    const rec = await ask();
    await g.press(rec.id, 'L1', 'approve');
    clock.now = T0 + 30 * MINUTE;
    expect(await g.press(rec.id, 'L2', 'approve')).toMatchObject({
      status: 'expired',
      record: { status: 'expired', decidedAt: '2026-01-01T00:30:00.000Z', approvers: ['L1'] },
    });
    expect(feed.at(-1)).toMatchObject({ kind: 'approval.expired', text: '"scale payments 0" asked by U9 expired with 1 of 2 approvals: not run' });
    expect(audits.at(-1)).toMatchObject({ result: 'expired', code: 'E_APPROVAL_EXPIRED', approval: { outcome: 'expired' } });
    expect(dispatched).toEqual([]);
    expect(await g.press(rec.id, 'L3', 'approve')).toMatchObject({
      why: 'closed',
      text: 'This approval request expired; nothing was run. Ask again if it is still needed.',
    });
  });

  it('a press a moment before the expiry still counts', async () => {
    const { g, ask, clock } = gate();
    const rec = await ask();
    clock.now = T0 + 30 * MINUTE - 1;
    expect((await g.press(rec.id, 'L1', 'approve')).status).toBe('counted');
  });

  it('expireDue marks the pending requests that are due, once, with an audit record and a feed line', async () => {
    const { g, ask, clock, feed, audits, records } = gate();
    const due = await ask({ text: 'scale payments 0' });
    clock.now = T0 + MINUTE;
    const later = await ask({ text: 'scale payments 1' });
    const done = await ask({ text: 'scale payments 2', requirement: leads({ expiryMs: 1 }) });
    await g.press(done.id, 'L1', 'reject');
    clock.now = T0 + 30 * MINUTE;
    const marked = await g.expireDue();
    expect(marked.map((r) => [r.id, r.status, r.decidedAt])).toEqual([[due.id, 'expired', '2026-01-01T00:30:00.000Z']]);
    expect(records.get(later.id)?.status).toBe('pending');
    expect(records.get(done.id)?.status).toBe('rejected');
    expect(feed.at(-1)).toMatchObject({ kind: 'approval.expired', text: '"scale payments 0" asked by U9 expired with 0 of 2 approvals: not run' });
    expect(audits.at(-1)).toEqual({
      requestId: `approval-${due.id}`,
      user: 'U9',
      channel: 'COPS',
      source: 'slack',
      command: 'scale',
      args: { approval: due.id, text: 'scale payments 0' },
      result: 'expired',
      code: 'E_APPROVAL_EXPIRED',
      durationMs: 0,
      approval: { id: due.id, outcome: 'expired', approvers: [] },
    });
    const audited = audits.length;
    expect(await g.expireDue()).toEqual([]);
    expect(audits).toHaveLength(audited);
  });

  it('expireDue writes only to requests that are due, and re-checks each one at the write', async () => {
    const { g, ask, clock, store, records, feed } = gate();
    const a = await ask({ text: 'scale payments 0' });
    const b = await ask({ text: 'scale payments 1', requirement: leads({ expiryMs: 60 * MINUTE }) });
    const c = await ask({ text: 'scale payments 2' });
    const d = await ask({ text: 'scale payments 3' });
    await g.press(d.id, 'L1', 'reject');
    clock.now = T0 + 30 * MINUTE;
    // The listing is a moment old: `a` was approved since, `c` is gone (its lease ended), `b` is not
    // due, `d` was rejected before it expired.
    const listed = [...records.values()];
    records.set(a.id, { ...records.get(a.id)!, status: 'approved', approvers: ['L1', 'L2'] });
    records.delete(c.id);
    store.list = async () => listed;
    const updated: string[] = [];
    const update = store.update.bind(store);
    store.update = (id, change) => {
      updated.push(id);
      return update(id, change);
    };
    const events = feed.length;
    expect(await g.expireDue()).toEqual([]);
    // Each update is a round trip to etcd: only the due one is tried.
    expect(updated).toEqual([a.id, c.id]);
    expect(records.get(a.id)?.status).toBe('approved');
    expect(records.get(b.id)?.status).toBe('pending');
    expect(feed).toHaveLength(events);
  });
});

describe('ApprovalGate: without a feed, and the press duration', () => {
  it('works without an #ops feed', async () => {
    const mem = memoryStore();
    const req = leads({ count: 1 });
    const g = new ApprovalGate({
      store: mem.store,
      acl: { decide: () => needs(req) },
      dispatcher: () => ({ dispatch: async () => ({ ok: true, summary: 'ran it' }) }),
      audit: { record: () => {} },
      log: pino({ level: 'silent' }),
    });
    const rec = await g.request({ text: 'reload', command: 'reload', caller: { userId: 'U9', channel: 'COPS', source: 'slack' }, requirement: req, why: 'w' });
    expect((await g.press(rec.id, 'L1', 'approve')).status).toBe('approved');
  });

  it('audits how long a press took, in milliseconds to the microsecond', async () => {
    const { g, ask, audits } = gate();
    const rec = await ask();
    let clock = 10_000;
    vi.spyOn(performance, 'now').mockImplementation(() => {
      clock += 617.2839;
      return clock;
    });
    try {
      await g.press(rec.id, 'U9', 'approve');
    } finally {
      vi.restoreAllMocks();
    }
    expect(audits[0]?.durationMs).toBe(617.284);
  });
});

describe('closedText', () => {
  it('says how each request ended', () => {
    const rec: ApprovalRecord = {
      id: 'a',
      text: 't',
      command: 'c',
      requester: 'U9',
      channel: 'C',
      rule: 'r',
      why: 'w',
      groups: [],
      count: 1,
      expiresAt: 0,
      status: 'pending',
      approvers: ['L1', 'L2'],
    };
    expect(closedText(rec)).toBe('This approval request is still pending.');
    expect(closedText({ ...rec, status: 'approved' })).toBe('This was already approved by L1, L2; the command runs once.');
    expect(closedText({ ...rec, status: 'rejected' })).toBe('This was already rejected by someone; nothing was run.');
    expect(closedText({ ...rec, status: 'rejected', rejectedBy: 'L3' })).toBe('This was already rejected by L3; nothing was run.');
  });
});
