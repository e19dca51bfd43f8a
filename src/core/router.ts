import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { ANY_SERVICE, type AclEvaluator } from './acl-types.js';
import { bindArgs } from './args.js';
import { logAudit, type AuditResult, type AuditSink } from './audit.js';
import type { Caller } from './caller.js';
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
}

const RESULT_OF: Partial<Record<ErrorCode, AuditResult>> = {
  E_DENIED: 'denied',
  E_PARSE: 'invalid',
  E_UNKNOWN_COMMAND: 'invalid',
  E_BAD_ARGS: 'invalid',
  // Not a failure: the command waits for a yes, and error-rate alerts must not count it.
  E_CONFIRM_REQUIRED: 'confirmation_needed',
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
    return [...this.commands.values()].filter((cmd) => this.decide(caller, cmd, ANY_SERVICE).allowed);
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
      this.authorize(caller, cmd, service);

      const ctx: CommandContext = {
        ...this.deps.facades,
        caller,
        requestId,
        log: log.child({ command: cmd.name }),
        progress: (text) => req.onProgress?.(text),
        visibleCommands: () => this.visibleCommands(caller),
      };
      // One deadline for the whole command: a plugin that hangs is cut off with a clear reply.
      const timeoutMs = commandTimeoutMs(cmd, bound.args);
      const deadline = { at: performance.now() + timeoutMs, ms: timeoutMs };
      const late = (err: unknown) => log.warn({ err, command: cmd.name }, 'command failed after its deadline');
      if (cmd.needsConfirmation && !bound.yes) {
        const confirm = cmd.needsConfirmation;
        const why = await beforeDeadline(cmd, deadline, () => confirm(ctx, bound.args), late);
        if (why) {
          throw new SwitchyardError('E_CONFIRM_REQUIRED', `${why}: nothing was changed`, {
            details: [`to go ahead, run it again with --yes: ${req.text.trim()} --yes`],
          });
        }
      }
      // Registry writes made by the handler carry who ran which command (for the #ops feed).
      const cause = { by: caller.userId, command: cmd.name, requestId, source: caller.source };
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

  private authorize(caller: Caller, cmd: CommandDef, service: string | typeof ANY_SERVICE | undefined): void {
    const decision = this.decide(caller, cmd, service);
    if (decision.allowed) return;
    const on = typeof service === 'string' ? ` on ${service}` : '';
    throw new SwitchyardError('E_DENIED', `you may not run ${cmd.name}${on} here: ${decision.reason}`);
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
