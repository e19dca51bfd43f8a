import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { aclOutcome, ANY_SERVICE, describeApprovers, type AclDecision, type AclEvaluator, type ApprovalRequirement } from './acl-types.js';
import type { ApprovalRequester } from './approval.js';
import { bindArgs } from './args.js';
import { logAudit, type AuditResult, type AuditSink } from './audit.js';
import { DM, type Caller } from './caller.js';
import type { Dispatcher, DispatchRequest } from './dispatch.js';
import { SwitchyardError, type ErrorCode } from './errors.js';
import { asReply, beforeDeadline, commandTimeoutMs } from './command-deadline.js';
import { withCause } from './feed.js';
import type { Metrics } from './metrics.js';
import type { Facades } from './facades.js';
import type { CommandContext, CommandDef, Plugin } from './plugin-api.js';
import type { Reply } from './reply.js';
import { suggest } from './suggest.js';
import { tokenize } from './tokenize.js';

export interface RouterDeps {
  plugins: readonly Plugin[];
  acl: AclEvaluator;
  /** What handlers reach the world through (the same objects for every command). */
  facades: Facades;
  log: Logger;
  audit?: AuditSink;
  metrics?: Metrics;
  /** Where commands that need approval are recorded; without it they are refused. */
  approvals?: ApprovalRequester;
}

const RESULT_OF: Partial<Record<ErrorCode, AuditResult>> = {
  E_DENIED: 'denied',
  E_PARSE: 'invalid',
  E_UNKNOWN_COMMAND: 'invalid',
  E_BAD_ARGS: 'invalid',
  // Not a failure: the command waits for a yes, and error-rate alerts must not count it.
  E_CONFIRM_REQUIRED: 'confirmation_needed',
  E_APPROVAL_REQUIRED: 'denied',
};

/**
 * The one path every command takes, whatever the front-end: parse, bind and validate
 * arguments, ACL, confirmation, handler, then exactly one audit record.
 */
export class Router implements Dispatcher {
  private readonly commands = new Map<string, CommandDef>();
  private readonly audit: AuditSink;

  constructor(private readonly deps: RouterDeps) {
    for (const plugin of deps.plugins) {
      for (const cmd of plugin.commands) {
        if (this.commands.has(cmd.name)) {
          throw new SwitchyardError('E_INTERNAL', `command "${cmd.name}" is defined twice (plugin ${plugin.name})`);
        }
        this.commands.set(cmd.name, cmd);
      }
    }
    this.audit = deps.audit ?? logAudit(deps.log);
  }

  /** Commands the caller could run (for some service): what `help` shows. */
  visibleCommands(caller: Caller): CommandDef[] {
    return [...this.commands.values()].filter((cmd) => aclOutcome(this.decide(caller, cmd, ANY_SERVICE)) !== 'deny');
  }

  /** What approval `command` needs from this caller (for some service), if any: for `help`. */
  approvalNeeded(caller: Caller, command: string): ApprovalRequirement | undefined {
    const cmd = this.commands.get(command);
    return cmd && this.decide(caller, cmd, ANY_SERVICE).approval;
  }

  async dispatch(req: DispatchRequest): Promise<Reply> {
    const started = performance.now();
    const requestId = req.requestId ?? randomUUID();
    const { caller } = req;
    const log = this.deps.log.child({ requestId, user: caller.userId, channel: caller.channel, source: caller.source });
    let command = '';
    let args: unknown = req.text;
    let result: AuditResult = 'error';
    let code: string | undefined;
    let approvalId: string | undefined;
    try {
      const words = tokenize(req.text);
      command = (words[0] ?? 'help').toLowerCase();
      const cmd = this.commands.get(command);
      if (!cmd) throw this.unknownCommand(command, caller);

      // A coarse check before looking at arguments: someone who may not run the command at
      // all learns nothing about its usage.
      this.authorize(caller, cmd, ANY_SERVICE);
      const bound = bindArgs(cmd, words.slice(1));
      args = bound.args;
      const service = cmd.serviceArg ? (bound.args[cmd.serviceArg] as string | undefined) : undefined;
      const decision = this.authorize(caller, cmd, service);
      // The approval gate checked the ACL at the press that approved it.
      const approved = req.approval !== undefined;

      const ctx: CommandContext = {
        ...this.deps.facades,
        caller,
        requestId,
        log: log.child({ command: cmd.name }),
        progress: (text) => req.onProgress?.(text),
        visibleCommands: () => this.visibleCommands(caller),
        approvalNeeded: (name) => this.approvalNeeded(caller, name),
      };
      // One deadline for the whole command: a plugin that hangs is cut off with a clear reply.
      const timeoutMs = commandTimeoutMs(cmd, bound.args);
      const deadline = { at: performance.now() + timeoutMs, ms: timeoutMs };
      const late = (err: unknown) => log.warn({ err, command: cmd.name }, 'command failed after its deadline');
      // Approvers approved exactly this command line: that is the explicit yes.
      if (cmd.needsConfirmation && !bound.yes && !approved) {
        const confirm = cmd.needsConfirmation;
        const why = await beforeDeadline(cmd, deadline, () => confirm(ctx, bound.args), late);
        if (why) {
          throw new SwitchyardError('E_CONFIRM_REQUIRED', `${why}: nothing was changed`, {
            details: [`to go ahead, run it again with --yes: ${req.text.trim()} --yes`],
          });
        }
      }
      if (decision.approval && !approved && !(caller.source === 'shell' && decision.approval.shellAllowed)) {
        // Confirmation came first: what is recorded is what the requester already said yes to.
        const id = await this.requestApproval(req.text.trim(), cmd, service, caller, decision, decision.approval);
        approvalId = id;
        result = 'approval_needed';
        code = 'E_APPROVAL_PENDING';
        const r = decision.approval;
        return {
          ok: false,
          summary: `${req.text.trim()} needs approval by ${describeApprovers(r)} before it runs: request ${id} is waiting`,
          details: [`why: ${decision.reason}`],
          code,
          approval: { id },
        };
      }
      // Registry writes made by the handler carry who ran which command (for the #ops feed);
      // an approved run also carries its approvers.
      const cause = {
        by: caller.userId,
        command: cmd.name,
        requestId,
        source: approved ? 'approval' : caller.source,
        ...(req.approval ? { approvedBy: [...req.approval.approvers] } : {}),
      };
      const reply = asReply(await withCause(cause, () => beforeDeadline(cmd, deadline, () => cmd.handler(ctx, bound.args), late)));
      result = reply.ok ? 'ok' : 'error';
      code = reply.code;
      return reply;
    } catch (e) {
      if (e instanceof SwitchyardError) {
        result = RESULT_OF[e.code] ?? 'error';
        code = e.code;
        if (result === 'denied') this.deps.metrics?.aclRefusals.inc({ command });
        return { ok: false, summary: e.message, details: [...e.details], code: e.code };
      }
      code = 'E_INTERNAL';
      log.error({ err: e, command }, 'command failed unexpectedly');
      return { ok: false, summary: `internal error (request ${requestId}); details are in the bot's log`, code };
    } finally {
      const durationMs = Math.round((performance.now() - started) * 1000) / 1000;
      const known = this.commands.has(command);
      this.audit.record({
        requestId,
        user: caller.userId,
        channel: caller.channel,
        source: caller.source,
        command,
        args,
        result,
        ...(code ? { code } : {}),
        durationMs,
        ...(req.approval ? { approvedBy: [...req.approval.approvers], approval: { id: req.approval.id, outcome: 'ran' } } : {}),
        ...(approvalId ? { approval: { id: approvalId, outcome: 'requested' } } : {}),
      });
      // Label cardinality stays bounded: unknown words are counted under one label.
      const label = known ? command : 'unknown';
      this.deps.metrics?.commands.inc({ command: label, result });
      this.deps.metrics?.commandDuration.observe({ command: label }, durationMs / 1000);
    }
  }

  private decide(caller: Caller, cmd: CommandDef, service: string | typeof ANY_SERVICE | undefined) {
    return this.deps.acl.decide({
      userId: caller.userId,
      channel: caller.channel,
      command: cmd.name,
      ...(cmd.serviceArg ? { service } : {}),
    });
  }

  /** Throws E_DENIED unless the decision allows the command, directly or with approval. */
  private authorize(caller: Caller, cmd: CommandDef, service: string | typeof ANY_SERVICE | undefined): AclDecision {
    const decision = this.decide(caller, cmd, service);
    if (aclOutcome(decision) !== 'deny') return decision;
    const on = typeof service === 'string' ? ` on ${service}` : '';
    throw new SwitchyardError('E_DENIED', `you may not run ${cmd.name}${on} here: ${decision.reason}`);
  }

  /** Records the pending request; throws E_APPROVAL_REQUIRED where no approval can be asked for. */
  private async requestApproval(
    text: string,
    cmd: CommandDef,
    service: string | undefined,
    caller: Caller,
    decision: AclDecision,
    requirement: ApprovalRequirement,
  ): Promise<string> {
    const on = service !== undefined ? ` on ${service}` : '';
    const refuse = (why: string) => new SwitchyardError('E_APPROVAL_REQUIRED', `${cmd.name}${on} ${decision.reason}; ${why}: nothing was changed`);
    if (caller.source === 'shell') throw refuse('approvals are given in Slack, so the shell refuses it');
    // Approvers cannot see a direct conversation with the bot.
    if (caller.channel === DM) throw refuse('ask in a channel where the approvers can see the request');
    if (!this.deps.approvals) throw refuse('approvals are not available here');
    const record = await this.deps.approvals.request({
      text,
      command: cmd.name,
      ...(service !== undefined ? { service } : {}),
      caller,
      requirement,
      why: decision.reason,
    });
    return record.id;
  }

  private unknownCommand(word: string, caller: Caller): SwitchyardError {
    const hints = suggest(
      word,
      this.visibleCommands(caller).map((c) => c.name),
    );
    const hint = hints.length ? ` — did you mean ${hints.map((h) => `"${h}"`).join(' or ')}?` : '';
    return new SwitchyardError('E_UNKNOWN_COMMAND', `unknown command "${word}"${hint}`, {
      details: ['type "help" for the commands you may run'],
    });
  }
}
