/**
 * Confirmation buttons for destructive commands. The router refuses them without --yes
 * (E_CONFIRM_REQUIRED); in Slack that refusal becomes a Confirm / Cancel pair bound to the
 * exact command text, answerable only by the requester, for `ttlMs`. The request lives
 * in etcd (EtcdConfirmationStore), so a press reaching another replica works and two
 * presses act once. Confirming runs the stored text with --yes through the router again:
 * ACL, validation and audit all apply as if typed.
 */
import type { App, BlockAction, ButtonAction, RespondFn } from '@slack/bolt';
import { Counter, type Registry } from 'prom-client';
import type { Caller } from '../../core/caller.js';
import type { Dispatcher } from '../../core/dispatch.js';
import type { Logger } from '../../core/log.js';
import type { Reply } from '../../core/reply.js';
import { codeText as code, escapeMrkdwn, mention } from './mrkdwn.js';
import { ProgressReply } from './progress.js';
import { fallbackText, section, type Block, type SlackMessage } from './render.js';
import { ackOrCarryOn } from './ack.js';
import { runCommand } from './run.js';

export const CONFIRM_ACTION = 'switchyard_confirm';
export const CANCEL_ACTION = 'switchyard_cancel';
export const DEFAULT_CONFIRM_TTL_MS = 2 * 60_000;

import type { Answer, ConfirmationStore, PendingRequest } from '../../core/confirmations.js';

export type { Answer, ConfirmationStore, PendingRequest };

export interface ConfirmationOptions {
  store: ConfirmationStore;
  dispatcher: Dispatcher;
  log: Logger;
  metricsRegistry: Registry;
  /** Default 2 minutes. */
  ttlMs?: number;
  now?: () => number;
}

/** What the buttons carry: the id, and enough to answer a press after the record is gone. */
interface ButtonValue {
  id: string;
  user: string;
  expiresAt: number;
}

export class SlackConfirmations {
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly outcomes: Counter<'result'>;

  constructor(private readonly o: ConfirmationOptions) {
    this.ttlMs = o.ttlMs ?? DEFAULT_CONFIRM_TTL_MS;
    this.now = o.now ?? Date.now;
    this.log = o.log.child({ component: 'slack-confirm' });
    const name = 'switchyard_confirmations_total';
    const existing = o.metricsRegistry.getSingleMetric(name);
    this.outcomes =
      existing instanceof Counter
        ? (existing as Counter<'result'>)
        : new Counter({
            name,
            help: 'Confirmation buttons by outcome (requested, confirmed, cancelled, expired, foreign, repeated)',
            labelNames: ['result'] as const,
            registers: [o.metricsRegistry],
          });
  }

  /**
   * The buttons for a command the router refused for want of confirmation; undefined when
   * the request cannot be stored (the refusal itself, which mentions --yes, is shown).
   */
  readonly request = async (p: { text: string; caller: Caller; reply: Reply; log: Logger }): Promise<SlackMessage | undefined> => {
    // The same hook sees requests recorded for approval; those are approval.ts's to show.
    if (p.reply.code !== 'E_CONFIRM_REQUIRED') return undefined;
    try {
      const { id, expiresAt } = await this.o.store.create(
        { user: p.caller.userId, channel: p.caller.channel, text: p.text, reason: p.reply.summary },
        this.ttlMs,
      );
      this.outcomes.inc({ result: 'requested' });
      return renderConfirmation(p.reply.summary, p.text, { id, user: p.caller.userId, expiresAt }, this.ttlMs);
    } catch (err) {
      p.log.error({ err }, 'could not store a confirmation; showing the refusal instead');
      return undefined;
    }
  };

  /** Handle the buttons; `track` keeps a press's work in the app's in-flight set. */
  register(app: App, track: (p: Promise<void>) => Promise<void>): void {
    for (const [actionId, answer] of [
      [CONFIRM_ACTION, 'confirmed'],
      [CANCEL_ACTION, 'cancelled'],
    ] as const) {
      app.action<BlockAction<ButtonAction>>({ type: 'block_actions', action_id: actionId }, async ({ ack, body, action, respond }) => {
        await ackOrCarryOn(ack, this.log);
        await track(this.press(answer, action.value, body.user.id, respond));
      });
    }
  }

  /** Never rejects: every outcome is an answer to the presser. */
  private async press(answer: Answer, rawValue: string | undefined, presser: string, respond: RespondFn): Promise<void> {
    const log = this.log.child({ user: presser, answer });
    /** `text` is mrkdwn: only IDs (through mention()) and fixed words go into it. */
    const tell = async (text: string, result: string) => {
      this.outcomes.inc({ result });
      log.info({ result }, 'confirmation press refused');
      await respond({ response_type: 'ephemeral', replace_original: false, text }).catch((err: unknown) =>
        log.warn({ err }, 'could not answer a confirmation press'),
      );
    };
    const value = parseValue(rawValue);
    if (!value) return tell('This button is not a confirmation switchyard can read; nothing was changed.', 'invalid');
    let res: Awaited<ReturnType<ConfirmationStore['take']>>;
    try {
      res = await this.o.store.take(value.id, presser, answer);
    } catch (err) {
      log.error({ err }, 'could not check a confirmation');
      return tell('Could not reach etcd to check this confirmation; nothing was changed. Try again in a moment.', 'error');
    }
    const ttl = describeMs(this.ttlMs);
    switch (res.status) {
      case 'foreign':
        return tell(foreign(res.user), 'foreign');
      case 'expired':
        return tell(`This confirmation expired (they last ${ttl}); nothing was changed. Run the command again if you still need it.`, 'expired');
      case 'answered':
        return tell(`This was already ${res.answer} by ${mention(res.by)}; the command runs at most once.`, 'repeated');
      case 'missing':
        if (value.user !== presser) return tell(foreign(value.user), 'foreign');
        if (this.now() >= value.expiresAt) {
          return tell(`This confirmation expired (they last ${ttl}); nothing was changed. Run the command again if you still need it.`, 'expired');
        }
        return tell('This confirmation is no longer pending; nothing was changed.', 'repeated');
      case 'taken':
        this.outcomes.inc({ result: answer });
        return answer === 'cancelled' ? this.cancelled(res.request, presser, respond, log) : this.confirmed(res.request, value.id, respond, log);
    }
  }

  private async cancelled(req: PendingRequest, presser: string, respond: RespondFn, log: Logger): Promise<void> {
    const text = `Cancelled by ${mention(presser)}: \`${code(req.text)}\` was not run; nothing was changed.`;
    await respond({ replace_original: true, text: fallbackText(`Cancelled: ${req.text} was not run`), blocks: [section(text)] }).catch((err: unknown) =>
      log.warn({ err }, 'could not show the cancellation'),
    );
  }

  private async confirmed(req: PendingRequest, id: string, respond: RespondFn, log: Logger): Promise<void> {
    const requestId = `confirm-${id}`;
    const reqLog = log.child({ requestId, command: req.text.split(/\s+/, 1)[0] });
    const reply = new ProgressReply(async (msg) => {
      await respond({ replace_original: true, ...msg });
    }, reqLog);
    reply.progress(`confirmed by ${req.user} — running ${req.text}`);
    const caller: Caller = { userId: req.user, channel: req.channel, source: 'slack' };
    await runCommand({ dispatcher: this.o.dispatcher, text: `${req.text} --yes`, caller, requestId, reply, log: reqLog });
  }
}

export function renderConfirmation(reason: string, text: string, value: ButtonValue, ttlMs: number): SlackMessage {
  const encoded = JSON.stringify(value);
  const blocks: Block[] = [
    section(`:warning: ${escapeMrkdwn(reason)}`),
    section(`Run \`${code(text)}\` anyway? Only ${mention(value.user)} can answer; this expires in ${describeMs(ttlMs)}.`),
    {
      type: 'actions',
      block_id: 'switchyard_confirmation',
      elements: [
        { type: 'button', action_id: CONFIRM_ACTION, style: 'danger', text: { type: 'plain_text', text: 'Confirm' }, value: encoded },
        { type: 'button', action_id: CANCEL_ACTION, text: { type: 'plain_text', text: 'Cancel' }, value: encoded },
      ],
    },
  ];
  return { text: fallbackText(`Confirmation needed: ${reason}. Confirm or cancel within ${describeMs(ttlMs)}.`), blocks };
}

function parseValue(raw: string | undefined): ButtonValue | undefined {
  try {
    const v = JSON.parse(raw ?? '') as Partial<ButtonValue>;
    if (typeof v.id === 'string' && typeof v.user === 'string' && typeof v.expiresAt === 'number') return { id: v.id, user: v.user, expiresAt: v.expiresAt };
  } catch {
    // not ours
  }
  return undefined;
}

function foreign(user: string): string {
  return `Only ${mention(user)}, who ran this command, can confirm or cancel it; nothing was changed.`;
}

function describeMs(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000} min` : `${Math.round(ms / 1000)} s`;
}
