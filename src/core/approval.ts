/**
 * Two-person approval. An acl.yaml rule with `approval:` makes the router record a command
 * as pending instead of running it; eligible people then approve or reject it, from any
 * replica, and the press that completes the approval — exactly one, since every press is a
 * compare-and-swap — runs it once, as the requester, through the router again.
 *
 * The core owns the contract and the decisions (who may press, what a press does); the
 * store (etcd) only keeps records and swaps them atomically, and front-ends (Slack) only
 * show them.
 */
import { aclOutcome, describeApprovers, type AclEvaluator, type ApprovalRequirement } from './acl-types.js';
import type { AuditRecord, AuditSink } from './audit.js';
import type { Caller } from './caller.js';
import type { Dispatcher } from './dispatch.js';
import type { FeedSink } from './feed.js';
import type { Logger } from './log.js';
import type { Reply } from './reply.js';

export type ApprovalStatus = 'pending' | 'approved' | 'rejected' | 'expired';
export type Vote = 'approve' | 'reject';

/** What the router records: the command exactly as typed, and why it needs approval. */
export interface ApprovalRequest {
  /** The command line exactly as typed: approving runs this and nothing else. */
  text: string;
  command: string;
  /** The command's service argument, for the ACL check at press time. */
  service?: string;
  requester: string;
  /** The requester's channel as the ACL saw it. */
  channel: string;
  /** The rule asking for approval, as refusals name it. */
  rule: string;
  /** Why approval is needed, one line for people. */
  why: string;
  groups: string[];
  count: number;
  /** ms since the epoch. */
  expiresAt: number;
}

export interface ApprovalRecord extends ApprovalRequest {
  id: string;
  status: ApprovalStatus;
  /** Distinct approvers so far, in order. */
  approvers: string[];
  rejectedBy?: string;
  /** When the status last changed from pending. */
  decidedAt?: string;
  /** Where the request is shown (set by the front-end once posted), so any replica can edit it. */
  message?: { channel: string; ts: string };
}

/**
 * The record keeping, on a lease. `update` is a compare-and-swap loop: `change` gets the
 * current record and returns the next one (or undefined for "leave it"); when another
 * writer got there first it is called again with what they wrote.
 */
export interface ApprovalStore {
  create(request: ApprovalRequest, opts: { keepMs: number }): Promise<ApprovalRecord>;
  get(id: string): Promise<ApprovalRecord | undefined>;
  update(id: string, change: (current: ApprovalRecord) => ApprovalRecord | undefined): Promise<{ record: ApprovalRecord; changed: boolean } | undefined>;
  /** Every record still kept (pending or recently decided). */
  list(): Promise<ApprovalRecord[]>;
}

/** What the router needs: record a pending request. */
export interface ApprovalRequester {
  request(p: { text: string; command: string; service?: string; caller: Caller; requirement: ApprovalRequirement; why: string }): Promise<ApprovalRecord>;
}

/** Why a press changed nothing. */
export type PressRefusal = 'requester' | 'ineligible' | 'already-voted' | 'acl-denies' | 'acl-allows' | 'closed';

export type PressResult =
  | { status: 'missing' }
  | { status: 'refused'; why: PressRefusal; text: string; record: ApprovalRecord }
  /** The approval counted; more are needed. */
  | { status: 'counted'; record: ApprovalRecord }
  /** This press completed it: the command ran, `reply` is its result. */
  | { status: 'approved'; record: ApprovalRecord; reply: Reply }
  | { status: 'rejected'; record: ApprovalRecord }
  /** The press came after the expiry; the record is now marked expired. */
  | { status: 'expired'; record: ApprovalRecord };

/** After the expiry, decided records are kept this long so late presses can be told who decided. */
export const APPROVAL_KEEP_MS = 10 * 60_000;

export interface ApprovalGateOptions {
  store: ApprovalStore;
  acl: AclEvaluator;
  /** The router; a function because the router is built with this gate. */
  dispatcher: () => Dispatcher;
  audit: AuditSink;
  /** #ops: requests and their outcome, as `approval.*` events (posted by whoever made the change, so once). */
  feed?: FeedSink;
  log: Logger;
  now?: () => number;
}

/** What a front-end may do around a press that completes an approval. */
export interface PressHooks {
  /** Called once the approval is recorded, before the command runs (to show "running"). */
  beforeRun?(record: ApprovalRecord): Promise<void>;
  onProgress?(text: string): void;
}

export class ApprovalGate implements ApprovalRequester {
  private readonly now: () => number;

  constructor(private readonly o: ApprovalGateOptions) {
    this.now = o.now ?? Date.now;
  }

  async request(p: Parameters<ApprovalRequester['request']>[0]): Promise<ApprovalRecord> {
    const r = p.requirement;
    const rec = await this.o.store.create(
      {
        text: p.text,
        command: p.command,
        ...(p.service !== undefined ? { service: p.service } : {}),
        requester: p.caller.userId,
        channel: p.caller.channel,
        rule: r.rule,
        why: p.why,
        groups: [...r.groups],
        count: r.count,
        expiresAt: this.now() + r.expiryMs,
      },
      { keepMs: r.expiryMs + APPROVAL_KEEP_MS },
    );
    this.publish('approval.requested', `${rec.requester} asked to run "${rec.text}": waiting for approval by ${describeApprovers(rec)} (${rec.rule})`);
    return rec;
  }

  get(id: string): Promise<ApprovalRecord | undefined> {
    return this.o.store.get(id);
  }

  /** Record where the request is shown; no-op once the record is gone. */
  async attachMessage(id: string, message: { channel: string; ts: string }): Promise<void> {
    await this.o.store.update(id, (rec) => ({ ...rec, message }));
  }

  /**
   * One press. Eligibility is decided against the ACL as it is now (a member removed from
   * `leads` since the request can no longer approve it), and the press is audited whatever
   * it did.
   */
  async press(id: string, presser: string, vote: Vote, hooks: PressHooks = {}): Promise<PressResult> {
    const started = performance.now();
    let refusal: { why: PressRefusal; text: string } | undefined;
    let outcome: 'counted' | 'approved' | 'rejected' | 'expired' | undefined;
    const res = await this.o.store.update(id, (rec) => {
      refusal = undefined;
      outcome = undefined;
      const next = this.apply(rec, presser, vote);
      if ('why' in next) {
        refusal = next;
        return undefined;
      }
      outcome = next.outcome;
      return next.record;
    });
    if (!res) return { status: 'missing' };
    const record = res.record;
    this.auditPress(record, presser, vote, outcome ?? refusal?.why ?? 'closed', started);
    if (refusal) return { status: 'refused', ...refusal, record };
    if (!res.changed || !outcome) return { status: 'refused', why: 'closed', text: closedText(record), record };
    if (outcome === 'rejected') this.publish('approval.rejected', `"${record.text}" asked by ${record.requester} was rejected by ${presser}: not run`);
    if (outcome === 'expired') this.publish('approval.expired', expiredText(record));
    if (outcome === 'approved') {
      this.publish('approval.approved', `"${record.text}" asked by ${record.requester} was approved by ${record.approvers.join(', ')}: running it`);
      await hooks.beforeRun?.(record).catch((err: unknown) => this.o.log.warn({ err, approval: id }, 'could not show the approval before running'));
      return { status: 'approved', record, reply: await this.run(record, hooks.onProgress) };
    }
    return { status: outcome, record };
  }

  /** Mark every pending request past its expiry as expired; returns those this call marked. */
  async expireDue(): Promise<ApprovalRecord[]> {
    const now = this.now();
    const due = (await this.o.store.list()).filter((r) => r.status === 'pending' && now >= r.expiresAt);
    const marked: ApprovalRecord[] = [];
    for (const r of due) {
      const res = await this.o.store.update(r.id, (cur) =>
        cur.status === 'pending' && now >= cur.expiresAt ? { ...cur, status: 'expired', decidedAt: new Date(now).toISOString() } : undefined,
      );
      if (res?.changed) {
        marked.push(res.record);
        this.publish('approval.expired', expiredText(res.record));
        this.o.audit.record({
          requestId: `approval-${r.id}`,
          user: r.requester,
          channel: r.channel,
          source: 'slack',
          command: r.command,
          args: { approval: r.id, text: r.text },
          result: 'expired',
          code: 'E_APPROVAL_EXPIRED',
          durationMs: 0,
          approval: { id: r.id, outcome: 'expired', approvers: res.record.approvers },
        });
      }
    }
    return marked;
  }

  private apply(
    rec: ApprovalRecord,
    presser: string,
    vote: Vote,
  ): { why: PressRefusal; text: string } | { outcome: 'counted' | 'approved' | 'rejected' | 'expired'; record: ApprovalRecord } {
    const at = new Date(this.now()).toISOString();
    if (rec.status !== 'pending') return { why: 'closed', text: closedText(rec) };
    if (this.now() >= rec.expiresAt) return { outcome: 'expired', record: { ...rec, status: 'expired', decidedAt: at } };
    if (presser === rec.requester) return { why: 'requester', text: 'You asked for this command; someone else has to approve or reject it.' };
    const decision = this.o.acl.decide({
      userId: rec.requester,
      channel: rec.channel,
      command: rec.command,
      ...(rec.service !== undefined ? { service: rec.service } : {}),
    });
    const outcome = aclOutcome(decision);
    if (outcome === 'deny') return { why: 'acl-denies', text: `The ACL now refuses this command (${decision.reason}); it cannot be approved.` };
    if (outcome === 'allow' || !decision.approval) {
      return { why: 'acl-allows', text: `The ACL no longer asks for approval (${decision.reason}); the requester can run it directly.` };
    }
    const req = decision.approval;
    if (req.approvers !== '*' && !req.approvers.has(presser)) {
      return { why: 'ineligible', text: `Only members of ${req.groups.join(', ')} other than the requester can approve or reject this (${req.rule}).` };
    }
    if (rec.approvers.includes(presser)) return { why: 'already-voted', text: 'You already approved this; it needs a different person.' };
    if (vote === 'reject') return { outcome: 'rejected', record: { ...rec, status: 'rejected', rejectedBy: presser, decidedAt: at } };
    const approvers = [...rec.approvers, presser];
    // The count as the rule says now: raising it mid-request asks for more approvers.
    const count = Math.max(req.count, 1);
    if (approvers.length >= count) return { outcome: 'approved', record: { ...rec, approvers, count, status: 'approved', decidedAt: at } };
    return { outcome: 'counted', record: { ...rec, approvers, count } };
  }

  /** Runs once, after the compare-and-swap that approved it: as the requester, with the approvers attached. */
  private async run(rec: ApprovalRecord, onProgress?: (text: string) => void): Promise<Reply> {
    const caller: Caller = { userId: rec.requester, channel: rec.channel, source: 'slack' };
    try {
      return await this.o.dispatcher().dispatch({
        text: rec.text,
        caller,
        requestId: `approval-${rec.id}`,
        approval: { id: rec.id, approvers: rec.approvers },
        ...(onProgress ? { onProgress } : {}),
      });
    } catch (err) {
      this.o.log.error({ err, approval: rec.id }, 'approved command failed in dispatch');
      return { ok: false, summary: `internal error (request approval-${rec.id}); details are in the bot's log`, code: 'E_INTERNAL' };
    }
  }

  private publish(kind: string, text: string): void {
    this.o.feed?.publish({ kind, text, at: new Date(this.now()).toISOString() });
  }

  private auditPress(rec: ApprovalRecord, presser: string, vote: Vote, outcome: string, started: number): void {
    this.o.audit.record({
      requestId: `approval-${rec.id}-${vote}-${presser}`,
      user: presser,
      channel: rec.channel,
      source: 'slack',
      command: rec.command,
      args: { approval: rec.id, vote, text: rec.text },
      ...pressResult(outcome),
      durationMs: Math.round((performance.now() - started) * 1000) / 1000,
      approval: { id: rec.id, vote, outcome, approvers: rec.approvers },
    });
  }
}

function expiredText(rec: ApprovalRecord): string {
  return `"${rec.text}" asked by ${rec.requester} expired with ${rec.approvers.length} of ${rec.count} approvals: not run`;
}

const REFUSED_BY_ACL = new Set(['requester', 'ineligible', 'acl-denies']);

function pressResult(outcome: string): Pick<AuditRecord, 'result' | 'code'> {
  if (['counted', 'approved', 'rejected'].includes(outcome)) return { result: 'ok' };
  if (outcome === 'expired') return { result: 'expired', code: 'E_APPROVAL_EXPIRED' };
  return REFUSED_BY_ACL.has(outcome) ? { result: 'denied', code: 'E_DENIED' } : { result: 'invalid', code: 'E_CONFLICT' };
}

export function closedText(rec: ApprovalRecord): string {
  switch (rec.status) {
    case 'approved':
      return `This was already approved by ${rec.approvers.join(', ')}; the command runs once.`;
    case 'rejected':
      return `This was already rejected by ${rec.rejectedBy ?? 'someone'}; nothing was run.`;
    case 'expired':
      return 'This approval request expired; nothing was run. Ask again if it is still needed.';
    case 'pending':
      return 'This approval request is still pending.';
  }
}
