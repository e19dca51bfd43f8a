/**
 * The router's own contract, with stub commands instead of the built-in plugins: what each
 * refusal says, which audit record and metric it leaves, and what a handler sees. Cases
 * found by mutation testing (docs/TESTING.md) that test/router.test.ts does not pin down.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { AclDecision, AclRequest, ApprovalRequirement } from '../src/core/acl-types.js';
import type { ApprovalRecord, ApprovalRequester } from '../src/core/approval.js';
import type { AuditRecord } from '../src/core/audit.js';
import type { Caller } from '../src/core/caller.js';
import type { DispatchRequest } from '../src/core/dispatch.js';
import type { Facades } from '../src/core/facades.js';
import { currentCause, type Cause } from '../src/core/feed.js';
import { createMetrics } from '../src/core/metrics.js';
import { defineCommand, type CommandDef, type Plugin } from '../src/core/plugin-api.js';
import { ok } from '../src/core/reply.js';
import { Router, type RouterDeps } from '../src/core/router.js';
import { throwingCommand } from './helpers/core.js';

const slack = (userId = 'U1', channel = 'COPS'): Caller => ({ userId, channel, source: 'slack' });

const allowAll = { decide: (): AclDecision => ({ allowed: true, reason: 'allowed by test' }) };

function build(commands: CommandDef[], deps: Partial<RouterDeps> = {}) {
  const audits: AuditRecord[] = [];
  const metrics = createMetrics();
  const router = new Router({
    plugins: [{ name: 'stub', commands }],
    acl: allowAll,
    facades: {} as Facades,
    log: pino({ level: 'silent' }),
    audit: { record: (r) => audits.push(r) },
    metrics,
    ...deps,
  });
  const run = (text: string, caller = slack(), extra: Partial<DispatchRequest> = {}) => router.dispatch({ text, caller, requestId: 'r1', ...extra });
  const count = async (name: string) => (await metrics.registry.getSingleMetricAsString(name)).split('\n').filter((l) => !l.startsWith('#'));
  return { router, audits, run, count };
}

const echo = defineCommand({
  name: 'echo',
  summary: 'says it back',
  args: z.object({ service: z.string().describe('service'), loud: z.boolean().optional() }),
  positionals: ['service'],
  serviceArg: 'service',
  handler: async (_ctx, a) => (a.loud ? `${a.service.toUpperCase()}!` : a.service),
});

describe('Router: the path of a command', () => {
  it('refuses two commands of the same name', () => {
    const twice: Plugin[] = [
      { name: 'a', commands: [echo] },
      { name: 'b', commands: [echo] },
    ];
    expect(() => new Router({ plugins: twice, acl: allowAll, facades: {} as Facades, log: pino({ level: 'silent' }) })).toThrow(
      'command "echo" is defined twice (plugin b)',
    );
  });

  it('reads the command name case-blind, and an empty line as help', async () => {
    const help = defineCommand({ name: 'help', summary: 'h', args: z.object({}), positionals: [], handler: async () => 'the help' });
    const { run, audits } = build([echo, help]);
    expect(await run('ECHO web --loud')).toEqual({ ok: true, summary: 'WEB!' });
    expect(await run('   ')).toEqual({ ok: true, summary: 'the help' });
    expect(audits.map((a) => [a.command, a.result, a.args])).toEqual([
      ['echo', 'ok', { service: 'web', loud: true }],
      ['help', 'ok', {}],
    ]);
  });

  it('an unknown command suggests only commands the caller may run, counted under one label', async () => {
    const acl = { decide: (r: AclRequest): AclDecision => ({ allowed: r.command !== 'echoes', reason: 'no' }) };
    const echoes = defineCommand({ ...echo, name: 'echoes' });
    const { run, audits, count } = build([echo, echoes], { acl });
    const reply = await run('ecoh web');
    expect(reply).toEqual({
      ok: false,
      summary: 'unknown command "ecoh" — did you mean "echo"?',
      details: ['type "help" for the commands you may run'],
      code: 'E_UNKNOWN_COMMAND',
    });
    expect(audits[0]).toMatchObject({ command: 'ecoh', result: 'invalid', code: 'E_UNKNOWN_COMMAND', args: 'ecoh web' });
    expect(await count('switchyard_commands_total')).toEqual(['switchyard_commands_total{command="unknown",result="invalid"} 1']);
    expect((await run('zzzzzzzz')).summary).toBe('unknown command "zzzzzzzz"');
  });

  it('joins several suggestions with "or"', async () => {
    const { run } = build([echo, defineCommand({ ...echo, name: 'echa' })]);
    expect((await run('ech web')).summary).toBe('unknown command "ech" — did you mean "echa" or "echo"?');
  });

  it('a refusal names the service, is audited as denied and counted as an ACL refusal', async () => {
    const acl = {
      decide: (r: AclRequest): AclDecision => (r.service === 'payments' ? { allowed: false, reason: 'denied by rule #3' } : { allowed: true, reason: 'ok' }),
    };
    const { run, audits, count } = build([echo], { acl });
    expect(await run('echo payments')).toEqual({
      ok: false,
      summary: 'you may not run echo on payments here: denied by rule #3',
      details: [],
      code: 'E_DENIED',
    });
    expect(audits[0]).toMatchObject({ command: 'echo', result: 'denied', code: 'E_DENIED', args: { service: 'payments' } });
    expect(await count('switchyard_acl_refusals_total')).toEqual(['switchyard_acl_refusals_total{command="echo"} 1']);
    expect(await count('switchyard_commands_total')).toEqual(['switchyard_commands_total{command="echo",result="denied"} 1']);
  });

  it('a refusal of a command without a service names none', async () => {
    const acl = { decide: (): AclDecision => ({ allowed: false, reason: 'no rule allows it' }) };
    const plain = defineCommand({ name: 'plain', summary: 'p', args: z.object({}), positionals: [], handler: async () => 'x' });
    const { run } = build([plain], { acl });
    expect((await run('plain')).summary).toBe('you may not run plain here: no rule allows it');
  });

  it('an argument error is audited as invalid with the raw text', async () => {
    const { run, audits } = build([echo]);
    expect((await run('echo')).code).toBe('E_BAD_ARGS');
    expect((await run('echo "open')).code).toBe('E_PARSE');
    expect(audits.map((a) => [a.result, a.args])).toEqual([
      ['invalid', 'echo'],
      ['invalid', 'echo "open'],
    ]);
  });

  it('a reply that is not ok is audited as an error with its code', async () => {
    const failing = defineCommand({
      name: 'failing',
      summary: 'f',
      args: z.object({}),
      positionals: [],
      handler: async () => ({ ok: false, summary: 'no such thing', code: 'E_NOT_FOUND' }),
    });
    const { run, audits, count } = build([failing]);
    expect(await run('failing')).toEqual({ ok: false, summary: 'no such thing', code: 'E_NOT_FOUND' });
    expect(audits[0]).toMatchObject({ result: 'error', code: 'E_NOT_FOUND' });
    expect(await count('switchyard_commands_total')).toEqual(['switchyard_commands_total{command="failing",result="error"} 1']);
  });

  it('gives the handler its caller, request id, progress and help helpers, and attributes its writes', async () => {
    let cause: Cause | undefined;
    const seen: unknown[] = [];
    const probe = defineCommand({
      name: 'probe',
      summary: 'p',
      args: z.object({}),
      positionals: [],
      handler: async (ctx) => {
        cause = currentCause();
        ctx.progress('half way');
        seen.push(
          ctx.caller,
          ctx.requestId,
          ctx.visibleCommands().map((c) => c.name),
          ctx.approvalNeeded('probe'),
        );
        return ok('done');
      },
    });
    const progress: string[] = [];
    const { run } = build([probe, echo]);
    await run('probe', slack('U7', 'C9'), { onProgress: (t) => progress.push(t) });
    expect(progress).toEqual(['half way']);
    expect(seen).toEqual([slack('U7', 'C9'), 'r1', ['probe', 'echo'], undefined]);
    expect(cause).toEqual({ by: 'U7', command: 'probe', requestId: 'r1', source: 'slack' });
  });

  it('cuts off a handler at its deadline with E_TIMEOUT', async () => {
    const slow = defineCommand({
      name: 'slow',
      summary: 's',
      args: z.object({}),
      positionals: [],
      timeoutMs: 50,
      handler: () => new Promise<string>((resolve) => setTimeout(() => resolve('late'), 5_000).unref()),
    });
    const { run, audits } = build([slow]);
    expect(await run('slow')).toEqual({
      ok: false,
      summary: 'slow did not finish within 50ms; it may still complete',
      details: ['its changes, if any, appear in the #ops feed and in status'],
      code: 'E_TIMEOUT',
    });
    expect(audits[0]).toMatchObject({ result: 'error', code: 'E_TIMEOUT' });
  });

  it('an unexpected exception is an internal error naming the request, nothing more', async () => {
    const broken = throwingCommand('secret detail');
    const { run, audits } = build([broken]);
    expect(await run('broken')).toEqual({ ok: false, summary: "internal error (request r1); details are in the bot's log", code: 'E_INTERNAL' });
    expect(audits[0]).toMatchObject({ result: 'error', code: 'E_INTERNAL' });
  });

  it('audits the duration as a non-negative number of milliseconds', async () => {
    const { run, audits } = build([echo]);
    await run('echo web');
    expect(audits[0]?.durationMs).toBeGreaterThanOrEqual(0);
    expect(audits[0]).toMatchObject({ requestId: 'r1', user: 'U1', channel: 'COPS', source: 'slack' });
    expect(audits[0]).not.toHaveProperty('code');
    expect(audits[0]).not.toHaveProperty('approval');
  });
});

describe('Router: confirmation', () => {
  let changed = 0;
  const risky = defineCommand({
    name: 'risky',
    summary: 'r',
    args: z.object({ service: z.string() }),
    positionals: ['service'],
    needsConfirmation: async (_ctx, a) => (a.service === 'last' ? 'it is the last one' : undefined),
    handler: async () => {
      changed++;
      return 'changed';
    },
  });

  it('asks with the exact command to run again, changes nothing, and is not counted as an error', async () => {
    changed = 0;
    const { run, audits } = build([risky]);
    expect(await run('  risky last  ')).toEqual({
      ok: false,
      summary: 'it is the last one: nothing was changed',
      details: ['to go ahead, run it again with --yes: risky last --yes'],
      code: 'E_CONFIRM_REQUIRED',
    });
    expect(changed).toBe(0);
    expect(audits[0]).toMatchObject({ result: 'confirmation_needed', code: 'E_CONFIRM_REQUIRED' });
  });

  it('runs with --yes, when there is nothing to confirm, and when approvers approved it', async () => {
    changed = 0;
    const { run, audits } = build([risky]);
    expect((await run('risky last --yes')).ok).toBe(true);
    expect((await run('risky other')).ok).toBe(true);
    expect((await run('risky last', slack(), { approval: { id: 'a1', approvers: ['L1'] } })).ok).toBe(true);
    expect(changed).toBe(3);
    expect(audits[2]).toMatchObject({ result: 'ok', approvedBy: ['L1'], approval: { id: 'a1', outcome: 'ran' } });
  });
});

describe('Router: approval', () => {
  const requirement: ApprovalRequirement = {
    rule: 'rule "payments"',
    groups: ['leads'],
    count: 2,
    expiryMs: 60_000,
    shellAllowed: false,
    approvers: new Set(['L1']),
  };
  const needsApproval = (shellAllowed = false) => ({
    decide: (): AclDecision => ({ allowed: false, reason: 'needs approval by 2 of leads', approval: { ...requirement, shellAllowed } }),
  });
  const recorder = () => {
    const asked: Parameters<ApprovalRequester['request']>[0][] = [];
    const approvals: ApprovalRequester = {
      request: async (p) => {
        asked.push(p);
        return { id: 'ap-1' } as ApprovalRecord;
      },
    };
    return { asked, approvals };
  };

  it('records the exact command and answers with the pending request', async () => {
    const { asked, approvals } = recorder();
    const { run, audits } = build([echo], { acl: needsApproval(), approvals });
    expect(await run(' echo payments ')).toEqual({
      ok: false,
      summary: 'echo payments needs approval by 2 of leads before it runs: request ap-1 is waiting',
      details: ['why: needs approval by 2 of leads'],
      code: 'E_APPROVAL_PENDING',
      approval: { id: 'ap-1' },
    });
    expect(asked).toEqual([
      { text: 'echo payments', command: 'echo', service: 'payments', caller: slack(), requirement: { ...requirement }, why: 'needs approval by 2 of leads' },
    ]);
    expect(audits[0]).toMatchObject({ result: 'approval_needed', code: 'E_APPROVAL_PENDING', approval: { id: 'ap-1', outcome: 'requested' } });
  });

  it.each([
    ['the shell', { userId: 'U1', channel: 'dm', source: 'shell' } as Caller, true, 'approvals are given in Slack, so the shell refuses it'],
    ['a direct message', slack('U1', 'dm'), true, 'ask in a channel where the approvers can see the request'],
    ['a router without approvals', slack(), false, 'approvals are not available here'],
  ])('is refused in %s, changing nothing', async (_where, caller, withApprovals, why) => {
    const { asked, approvals } = recorder();
    const { run, audits } = build([echo], { acl: needsApproval(), ...(withApprovals ? { approvals } : {}) });
    expect(await run('echo payments', caller)).toEqual({
      ok: false,
      summary: `echo on payments needs approval by 2 of leads; ${why}: nothing was changed`,
      details: [],
      code: 'E_APPROVAL_REQUIRED',
    });
    expect(asked).toEqual([]);
    expect(audits[0]).toMatchObject({ result: 'denied', code: 'E_APPROVAL_REQUIRED' });
  });

  it('shell: allow lets the shell run it directly; Slack still asks', async () => {
    const { asked, approvals } = recorder();
    const { run } = build([echo], { acl: needsApproval(true), approvals });
    expect(await run('echo payments', { userId: 'U1', channel: 'dm', source: 'shell' })).toEqual({ ok: true, summary: 'payments' });
    expect((await run('echo payments')).code).toBe('E_APPROVAL_PENDING');
    expect(asked).toHaveLength(1);
  });

  it('an approved run is attributed to the requester, with its approvers', async () => {
    let cause: Cause | undefined;
    const probe = defineCommand({
      ...echo,
      name: 'probe',
      handler: async () => {
        cause = currentCause();
        return 'ran';
      },
    });
    const { run } = build([probe], { acl: needsApproval() });
    expect(await run('probe web', slack(), { approval: { id: 'ap-9', approvers: ['L1', 'L2'] } })).toEqual({ ok: true, summary: 'ran' });
    expect(cause).toEqual({ by: 'U1', command: 'probe', requestId: 'r1', source: 'approval', approvedBy: ['L1', 'L2'] });
  });

  it('help sees commands that need approval, and what they need', () => {
    const { router } = build([echo], { acl: needsApproval() });
    expect(router.visibleCommands(slack()).map((c) => c.name)).toEqual(['echo']);
    expect(router.approvalNeeded(slack(), 'echo')).toMatchObject({ groups: ['leads'], count: 2 });
    expect(router.approvalNeeded(slack(), 'nope')).toBeUndefined();
  });
});
