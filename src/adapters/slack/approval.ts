/**
 * Two-person approval in Slack. When the router records a command for approval
 * (E_APPROVAL_PENDING), the request is posted in the channel it was typed in — who, the
 * exact command, why, expiry — with Approve / Reject buttons. Presses go to the core's
 * ApprovalGate (ACL at press time, compare-and-swap in etcd, audit); this file only shows
 * what happened, editing the request message in place through chat.update, so a press on
 * any replica, or the expiry sweep, edits the same message.
 */
import type { App, BlockAction, ButtonAction, RespondFn } from '@slack/bolt';
import { describeApprovers } from '../../core/acl-types.js';
import type { ApprovalGate, ApprovalRecord, PressResult, Vote } from '../../core/approval.js';
import type { Logger } from '../../core/log.js';
import { ackOrCarryOn } from './ack.js';
import type { WebClient } from './client.js';
import { codeText as code, escapeMrkdwn, mention } from './mrkdwn.js';
import { fallbackText, renderReply, section, type Block, type SlackMessage } from './render.js';
import type { RunOptions } from './run.js';

export const APPROVE_ACTION = 'switchyard_approve';
export const REJECT_ACTION = 'switchyard_reject';
const BLOCK_ID = 'switchyard_approval';
export const DEFAULT_SWEEP_MS = 5000;

/** The part of the core's gate Slack uses. */
export type ApprovalDesk = Pick<ApprovalGate, 'get' | 'attachMessage' | 'press' | 'expireDue'>;

export interface SlackApprovalOptions {
  gate: ApprovalDesk;
  /** Posts and edits the request messages (also from the expiry sweep, outside any request). */
  client: WebClient;
  log: Logger;
  /** How often expired requests are looked for and their messages edited. */
  sweepMs?: number;
  now?: () => number;
}

type ConfirmHook = NonNullable<RunOptions['confirm']>;

export class SlackApprovals {
  private readonly log: Logger;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly o: SlackApprovalOptions) {
    this.log = o.log.child({ component: 'slack-approval' });
    this.now = o.now ?? Date.now;
  }

  /**
   * Handle the buttons (`track` keeps a press's work in the app's in-flight set) and return
   * the reply hook runCommand takes: a request recorded for approval is posted with its
   * buttons; anything else (a refusal for want of confirmation) goes to `confirm`.
   */
  attach(app: App, track: (p: Promise<void>) => Promise<void>, confirm?: ConfirmHook): ConfirmHook {
    this.register(app, track);
    return async (p) => {
      if (p.reply.code !== 'E_APPROVAL_PENDING' || !p.reply.approval) return confirm?.(p);
      return this.post(p.reply.approval.id, p.log);
    };
  }

  private register(app: App, track: (p: Promise<void>) => Promise<void>): void {
    for (const [actionId, vote] of [
      [APPROVE_ACTION, 'approve'],
      [REJECT_ACTION, 'reject'],
    ] as const) {
      app.action<BlockAction<ButtonAction>>({ type: 'block_actions', action_id: actionId }, async ({ ack, body, action, respond }) => {
        await ackOrCarryOn(ack, this.log);
        await track(this.press(vote, action.value, body.user.id, respond));
      });
    }
  }

  /** Start the expiry sweep (every replica runs one; the compare-and-swap picks one editor). */
  start(): this {
    if (this.timer || this.stopped) return this;
    this.timer = setInterval(() => {
      this.sweeping = this.sweeping.then(() => this.sweep());
    }, this.o.sweepMs ?? DEFAULT_SWEEP_MS);
    this.timer.unref();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.sweeping;
  }

  /** Mark expired requests and say so on their messages. Never rejects. */
  async sweep(): Promise<void> {
    if (this.stopped) return;
    try {
      for (const rec of await this.o.gate.expireDue()) await this.show(rec, renderDecided(rec));
    } catch (err) {
      this.log.warn({ err }, 'could not look for expired approval requests');
    }
  }

  /** Post the request in its channel; what the requester sees is returned. */
  private async post(id: string, log: Logger): Promise<SlackMessage | undefined> {
    let rec: ApprovalRecord | undefined;
    try {
      rec = await this.o.gate.get(id);
    } catch (err) {
      log.error({ err, approval: id }, 'could not read the approval request just recorded');
    }
    if (!rec) return undefined;
    try {
      const res = await this.o.client.chat.postMessage({ channel: rec.channel, unfurl_links: false, unfurl_media: false, ...renderRequest(rec, this.now()) });
      if (typeof res.ts === 'string') await this.o.gate.attachMessage(id, { channel: typeof res.channel === 'string' ? res.channel : rec.channel, ts: res.ts });
    } catch (err) {
      log.error({ err, approval: id }, 'could not post the approval request');
      const why = `needs approval by ${describeApprovers(rec)}, but the request could not be posted in this channel; nothing was run. Invite the bot here, or ask where it is.`;
      return plain(`:x: \`${code(rec.text)}\` ${escapeMrkdwn(why)}`, `${rec.text} ${why}`);
    }
    log.info({ approval: id }, 'approval requested');
    const what = `was not run: it needs approval by ${describeApprovers(rec)}. The request is posted in this channel and expires in ${describeMs(rec.expiresAt - this.now())}.`;
    return plain(`:lock: \`${code(rec.text)}\` ${escapeMrkdwn(what)}`, `${rec.text} ${what}`);
  }

  /** Never rejects: every outcome is an answer to the presser, or an edit of the request. */
  private async press(vote: Vote, rawValue: string | undefined, presser: string, respond: RespondFn): Promise<void> {
    const log = this.log.child({ user: presser, vote });
    const tell = async (text: string) => {
      log.info({ text }, 'approval press refused');
      await respond({ response_type: 'ephemeral', replace_original: false, text }).catch((err: unknown) =>
        log.warn({ err }, 'could not answer an approval press'),
      );
    };
    const id = parseValue(rawValue);
    if (!id) return tell('This button is not an approval switchyard can read; nothing was changed.');
    let res: PressResult;
    try {
      res = await this.o.gate.press(id, presser, vote, {
        // The approver sees at once that it counted; the result replaces this when the command is done.
        beforeRun: (rec) => this.show(rec, renderDecided(rec)),
      });
    } catch (err) {
      log.error({ err, approval: id }, 'could not record an approval press');
      return tell('Could not reach etcd to record this press; nothing was changed. Try again in a moment.');
    }
    switch (res.status) {
      case 'missing':
        return tell('This approval request is no longer kept (it expired a while ago); nothing was run.');
      case 'refused':
        return tell(refusalText(res, presser));
      case 'expired':
        await this.show(res.record, renderDecided(res.record), respond);
        return tell('This approval request expired before your press; nothing was run.');
      case 'counted':
      case 'rejected':
        await this.show(res.record, res.status === 'counted' ? renderRequest(res.record, this.now()) : renderDecided(res.record), respond);
        return;
      case 'approved':
        log.info({ approval: id, ok: res.reply.ok }, 'approved command ran');
        await this.show(res.record, renderDecided(res.record, renderReply(res.reply)), respond);
        return;
    }
  }

  /** Edit the request message wherever it is; the press's response_url when it was never recorded. */
  private async show(rec: ApprovalRecord, msg: SlackMessage, respond?: RespondFn): Promise<void> {
    try {
      if (rec.message) await this.o.client.chat.update({ channel: rec.message.channel, ts: rec.message.ts, ...msg });
      else if (respond) await respond({ replace_original: true, ...msg });
    } catch (err) {
      this.log.warn({ err, approval: rec.id }, 'could not update the approval request message');
    }
  }
}

function refusalText(res: Extract<PressResult, { status: 'refused' }>, presser: string): string {
  const rec = res.record;
  switch (res.why) {
    case 'requester':
      return `You asked for this command, so you cannot approve or reject it; ${escapeMrkdwn(describeApprovers(rec))} can. Nothing was changed.`;
    case 'already-voted':
      return `You already approved this (${mention(presser)}); it needs ${rec.count - rec.approvers.length} more from someone else.`;
    case 'closed':
      return closedText(rec);
    default:
      return `${escapeMrkdwn(res.text)} Nothing was changed.`;
  }
}

function closedText(rec: ApprovalRecord): string {
  switch (rec.status) {
    case 'approved':
      return `This was already approved by ${rec.approvers.map(mention).join(', ')}; the command runs once.`;
    case 'rejected':
      return `This was already rejected by ${mention(rec.rejectedBy ?? '')}; nothing was run.`;
    case 'expired':
      return 'This approval request expired; nothing was run. Run the command again if it is still needed.';
    case 'pending':
      return 'This approval request is still pending; nothing was changed.';
  }
}

/** The pending request: who, exact command, why, who may approve, expiry, approvals so far, buttons. */
export function renderRequest(rec: ApprovalRecord, now: number): SlackMessage {
  const value = JSON.stringify({ id: rec.id });
  const so = rec.approvers.length
    ? `approved so far by ${rec.approvers.map(mention).join(', ')} (${rec.approvers.length} of ${rec.count})`
    : `no approvals yet (0 of ${rec.count})`;
  const blocks: Block[] = [
    section(`:lock: *Approval needed*: ${mention(rec.requester)} asked to run \`${code(rec.text)}\``),
    section(`Why: ${escapeMrkdwn(rec.why)}`),
    section(
      `Who can answer: ${escapeMrkdwn(whoMay(rec))}, other than ${mention(rec.requester)}. Expires in ${describeMs(rec.expiresAt - now)}; until then nothing runs.`,
    ),
    { type: 'context', elements: [{ type: 'mrkdwn', text: so }] },
    {
      type: 'actions',
      block_id: BLOCK_ID,
      elements: [
        { type: 'button', action_id: APPROVE_ACTION, style: 'primary', text: { type: 'plain_text', text: 'Approve' }, value },
        { type: 'button', action_id: REJECT_ACTION, style: 'danger', text: { type: 'plain_text', text: 'Reject' }, value },
      ],
    },
  ];
  return { text: fallbackText(`Approval needed: ${rec.requester} asked to run ${rec.text} (${describeApprovers(rec)})`), blocks };
}

/** A decided request: no buttons left; an approved one shows the command's result below once it has one. */
export function renderDecided(rec: ApprovalRecord, result?: SlackMessage): SlackMessage {
  const cmd = `\`${code(rec.text)}\``;
  let head: string;
  let plainHead: string;
  switch (rec.status) {
    case 'approved':
      head = `:white_check_mark: ${cmd} asked by ${mention(rec.requester)}, approved by ${rec.approvers.map(mention).join(', ')}: ${result ? 'ran once.' : 'running it now…'}`;
      plainHead = `Approved: ${rec.text} (asked by ${rec.requester}, approved by ${rec.approvers.join(', ')})${result ? '' : ': running'}`;
      break;
    case 'rejected':
      head = `:no_entry: ${cmd} asked by ${mention(rec.requester)} was rejected by ${mention(rec.rejectedBy ?? '')}: nothing was run.`;
      plainHead = `Rejected: ${rec.text} was not run`;
      break;
    default:
      head = `:hourglass: ${cmd} asked by ${mention(rec.requester)} expired with ${rec.approvers.length} of ${rec.count} approvals: nothing was run.`;
      plainHead = `Expired: ${rec.text} was not run`;
  }
  const blocks: Block[] = [section(head), ...(result?.blocks ?? []).slice(0, 48)];
  const text = result ? `${plainHead}\n${result.text}` : plainHead;
  return { text: fallbackText(text), blocks };
}

function whoMay(rec: ApprovalRecord): string {
  if (rec.groups.includes('*')) return rec.count === 1 ? 'anyone' : `${rec.count} different people`;
  const groups = rec.groups.join(', ');
  return rec.count === 1 ? `one member of ${groups}` : `${rec.count} different members of ${groups}`;
}

/** `mrkdwn` for the block, `fallback` (plain, escaped here) for notifications. */
function plain(mrkdwn: string, fallback: string): SlackMessage {
  return { text: fallbackText(fallback), blocks: [section(mrkdwn)] };
}

function parseValue(raw: string | undefined): string | undefined {
  try {
    const v = JSON.parse(raw ?? '') as { id?: unknown };
    return typeof v.id === 'string' ? v.id : undefined;
  } catch {
    return undefined;
  }
}

function describeMs(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 120 ? `${Math.round(s / 60)} min` : `${s} s`;
}
